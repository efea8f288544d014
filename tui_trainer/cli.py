"""``gpt-console``: the console (no subcommand, or a CONFIG path) and the headless commands over the same runs.

    gpt-console [CONFIG]                      open the Textual console
    gpt-console run CONFIG [--set k=v ...] [--detach]
    gpt-console runs | attach RUN | stop RUN | resume RUN [--follow] | logs RUN [-f]
    gpt-console export RUN --csv [-o FILE] | --hf DIR [--step N] | --tensorboard DIR
    gpt-console control RUN checkpoint|sample [--prompt P]|eval|stop
    gpt-console status RUN | delete RUN | prepare CONFIG [--set k=v ...]

RUN is a run id or any unique prefix of one. Exit codes: 0 ok / run finished (or detached), 1 run failed or
command failed, 2 bad config or usage, 3 run stopped, 4 run lost.
Never imports torch: the console must start fast over SSH.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Sequence, TextIO

from tui_trainer.channel.diskfull import describe as describe_disk_full, is_disk_full
from tui_trainer.channel.summary import RunSummary
from tui_trainer.runs import Run, RunError, RunNotRunning, RunStore
from tui_trainer.runs.progress import describe_event, fmt_age, fmt_num, progress_line
from tui_trainer.training.lib.config import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED, EXIT_LOST = 0, 1, 2, 3, 4
STATE_EXIT = {"finished": EXIT_OK, "failed": EXIT_FAILED, "stopped": EXIT_STOPPED, "lost": EXIT_LOST}
SUBCOMMANDS = ("run", "runs", "attach", "stop", "resume", "logs", "export", "control", "status", "delete",
               "prepare", "plot")
NON_TTY_PROGRESS_EVERY_S = 10.0


# --------------------------------------------------------------------------------------------- parsing
def _runs_root_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-root", metavar="DIR", default=None,
                   help="directory holding the runs (default: $GPT_CONSOLE_RUNS or ./runs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpt-console",
        description="Train a GPT-2 from the terminal. Without a command, opens the console (on CONFIG if given).",
        epilog="Exit codes: 0 ok/finished/detached, 1 failed, 2 bad config or usage, 3 stopped, 4 lost.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="launch a run and follow it")
    p.add_argument("config", metavar="CONFIG", help="TOML config, e.g. configs/default.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set optim.max_lr=3e-4")
    p.add_argument("--name", help="name in the run id (default: the config file's name)")
    p.add_argument("--detach", action="store_true", help="launch and return at once; the run keeps going")
    _runs_root_arg(p)

    p = sub.add_parser("runs", help="list runs")
    _runs_root_arg(p)

    for name, text in (("attach", "replay a run's history, then follow it live"),
                       ("status", "show a run's status, reason, progress and files")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run", metavar="RUN")
        _runs_root_arg(p)

    p = sub.add_parser("stop", help="stop a run (it checkpoints first)")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for the graceful stop before killing (default: 120, or twice the run's "
                        "last step time plus a minute if that is longer)")
    _runs_root_arg(p)

    p = sub.add_parser("resume", help="continue a stopped/failed/lost run from its newest checkpoint")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--follow", action="store_true", help="follow it after relaunching")
    _runs_root_arg(p)

    p = sub.add_parser("logs", help="print the trainer's log (torchrun and all ranks)")
    p.add_argument("run", metavar="RUN")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing while the run is going")
    p.add_argument("-n", "--lines", type=int, default=None, help="only the last N lines")
    _runs_root_arg(p)

    p = sub.add_parser("export", help="export metrics (CSV, TensorBoard) or weights (Hugging Face)")
    p.add_argument("run", metavar="RUN")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--csv", action="store_true", help="per-step metrics with val and HellaSwag")
    kind.add_argument("--hf", metavar="DIR", help="a checkpoint as a Hugging Face GPT-2 dir (new or empty)")
    kind.add_argument("--tensorboard", metavar="DIR", help="metrics and samples as TensorBoard event files")
    p.add_argument("--step", type=int, help="with --hf: the checkpoint of this step (default: the newest)")
    p.add_argument("-o", "--output", metavar="FILE", help="with --csv: write here instead of stdout")
    _runs_root_arg(p)

    p = sub.add_parser("control", help="ask a live run to checkpoint, sample, evaluate or stop now")
    p.add_argument("run", metavar="RUN")
    p.add_argument("action", choices=("checkpoint", "sample", "eval", "stop"))
    p.add_argument("--prompt", help="prompt for 'sample' (default: the config's sample.prompt)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the acknowledgement")
    p.add_argument("--no-wait", action="store_true", help="send and return without waiting")
    _runs_root_arg(p)

    p = sub.add_parser("delete", help="delete a run directory (never a running run)")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _runs_root_arg(p)

    from tui_trainer.app.plot_cli import add_plot_parser
    add_plot_parser(sub, _runs_root_arg)

    p = sub.add_parser("prepare", help="prepare a config's token shards ahead of a run")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--hellaswag", action="store_true", help="also fetch and check the HellaSwag file")
    return parser


def build_app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpt-console", description="Open the console.",
                                     epilog=f"Commands: {', '.join(SUBCOMMANDS)} (gpt-console --help).")
    parser.add_argument("config", nargs="?", metavar="CONFIG", help="TOML config to open in the editor")
    _runs_root_arg(parser)
    return parser


# ------------------------------------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    try:
        if first not in SUBCOMMANDS and not ({"-h", "--help"} & set(argv) and first is None):
            args = build_app_parser().parse_args(argv)
            return cmd_app(args)
        args = build_parser().parse_args(argv)
        if args.command is None:
            return cmd_app(argparse.Namespace(config=None, runs_root=None))
        return COMMANDS[args.command](args)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except RunError as e:
        print(f"gpt-console: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # outside a follow loop (which asks first): just stop this command
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gpt-console logs RUN | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:  # a full disk is the user's to fix: one paragraph, whatever the verb
        if is_disk_full(e):
            print(f"gpt-console: {describe_disk_full(e)}", file=sys.stderr)
        elif e.filename is not None:  # a path the user gave or set up (runs root, output file): name it
            print(f"gpt-console: {e.strerror or e}: {e.filename} — check that path (--runs-root, -o) and its "
                  "permissions", file=sys.stderr)
        else:
            raise
        return EXIT_FAILED


def _store(args) -> RunStore:
    return RunStore(args.runs_root)


# ------------------------------------------------------------------------------------------- commands
def cmd_app(args) -> int:
    try:
        from tui_trainer.app import run_app
    except ImportError as e:
        print("gpt-console: the interactive console is not available in this installation "
              f"({e}). The headless commands work: {', '.join(SUBCOMMANDS)} — see `gpt-console --help`.",
              file=sys.stderr)
        return EXIT_FAILED
    if args.config and not Path(args.config).is_file():
        print(f"gpt-console: no such config file: {args.config} (presets live in configs/; for a command, "
              f"see `gpt-console --help`)", file=sys.stderr)
        return EXIT_USAGE
    result = run_app(config_path=args.config, runs_root=args.runs_root)
    return result if isinstance(result, int) else EXIT_OK


def cmd_run(args) -> int:
    store = _store(args)
    run = store.launch(config_path=args.config, overrides=args.overrides, name=args.name)
    print(f"launched {run.id} in {run.dir}")
    info = run.launch_info() or {}
    if int(info.get("nnodes", 1) or 1) > 1:
        print("multi-node: start the same command on every other node:\n  " + " ".join(info.get("argv", [])))
    if args.detach:
        print(f"detached: `gpt-console attach {run.id}` follows it, `gpt-console stop {run.id}` stops it")
        return EXIT_OK
    return follow(run)


def cmd_attach(args) -> int:
    return follow(_store(args).get(args.run))


def cmd_runs(args) -> int:
    store = _store(args)
    runs = store.list()
    if not runs:
        print(f"no runs in {store.root} — start one with `gpt-console run configs/default.toml`")
        return EXIT_OK
    now = time.time()
    rows = [("ID", "STATUS", "STEP", "LOSS", "BEST VAL", "HELLASWAG", "ALERTS", "AGE", "SLURM JOB")]
    for run in runs:
        status = run.status()
        s = run.summary()
        step = "-" if s.step is None else f"{s.step + 1}" + (f"/{s.max_steps}" if s.max_steps else "")
        label = status.label + (f" ({status.reason})" if status.state == "queued" and status.reason else "")
        job = str((run.launch_info() or {}).get("slurm_job_id") or "")
        rows.append((run.id, label, step, fmt_num(s.loss), fmt_num(s.best_val),
                     fmt_num(s.hellaswag_acc_norm), str(s.alert_count or "-"),
                     fmt_age(s.started_at or run.created_at(), now), job))
    if not any(r[-1] for r in rows[1:]):
        rows = [r[:-1] for r in rows]  # no Slurm runs: no empty column
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return EXIT_OK


def cmd_status(args) -> int:
    run = _store(args).get(args.run)
    status = run.status()
    s = run.summary()
    info = run.launch_info() or {}
    print(f"run      {run.id}\ndir      {run.dir}\nstatus   {status.label}" +
          (f" — {status.reason}" if status.reason else ""))
    print(f"progress {progress_line(s)}")
    if s.best_val is not None:
        print(f"best val {s.best_val:.4f} at step {s.best_val_step}")
    if info:
        print(f"launched {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info.get('started_at', 0)))} by "
              f"{info.get('user')}@{info.get('host')} (launch {info.get('launch')}, resumes {s.resumes})")
        print(f"command  {' '.join(info.get('argv', []))}")
        if info.get("slurm_job_id"):
            print(f"slurm    job {info['slurm_job_id']}, batch script {info.get('slurm_script')}")
    checkpoints = run.checkpoints()
    print(f"checkpoints {len(checkpoints)}" + (f", newest {checkpoints[-1].name}" if checkpoints else ""))
    if s.last_error:
        print(f"last error {s.last_error}")
    if s.alert_count:  # diverging steps and loss spikes (lib/health.py), newest last
        shown = s.alerts[-5:]
        print(f"alerts   {s.alert_count}" + (f", the newest {len(shown)}:" if s.alert_count > len(shown) else ":"))
        print("\n".join(f"  {message}" for message in shown))
    from tui_trainer.runs.system_view import last_system_event, system_lines
    system = last_system_event(run.events_file)
    if system is not None:
        print("\n".join(system_lines(system)))
    return STATE_EXIT.get(status.state, EXIT_OK) if status.final else EXIT_OK


def cmd_stop(args) -> int:
    from tui_trainer.runs.launcher import stop_grace
    run = _store(args).get(args.run)
    timeout = stop_grace(run) if args.timeout is None else args.timeout
    print(f"stopping {run.id}: the trainer checkpoints at the next step boundary "
          f"(killed after {timeout:.0f} s if it does not exit)...", flush=True)
    status = run.stop(timeout=timeout)
    print(f"{run.id}: {status.label}" + (f" — {status.reason}" if status.reason else ""))
    checkpoints = run.checkpoints()
    if checkpoints:
        print(f"newest checkpoint: {checkpoints[-1]}; `gpt-console resume {run.id}` continues from it")
    return EXIT_OK if status.state in ("stopped", "finished") else STATE_EXIT.get(status.state, EXIT_FAILED)


def cmd_resume(args) -> int:
    run = _store(args).get(args.run)
    run.resume()
    checkpoints = run.checkpoints()
    print(f"resumed {run.id} from {checkpoints[-1].name if checkpoints else 'its newest checkpoint'}")
    if not args.follow:
        print(f"`gpt-console attach {run.id}` follows it")
        return EXIT_OK
    return follow(run)


def cmd_logs(args) -> int:
    run = _store(args).get(args.run)
    path = run.log_file
    if not path.exists():
        print(f"gpt-console: {run.id} has no log yet ({path})", file=sys.stderr)
        return EXIT_FAILED
    out = sys.stdout.buffer
    with open(path, "rb") as f:
        if args.lines is not None:
            out.write(("\n".join(run.log_tail(args.lines)) + "\n").encode())
            f.seek(0, os.SEEK_END)
        else:
            while chunk := f.read(1 << 20):
                out.write(chunk)
        out.flush()
        if not args.follow:
            return EXIT_OK
        try:
            idle_checks = 0
            while True:
                chunk = f.read(1 << 16)
                if chunk:
                    out.write(chunk)
                    out.flush()
                    continue
                idle_checks += 1
                if idle_checks % 10 == 0 and not run.is_running():
                    # One last read: the supervisor's closing line lands just before it exits.
                    out.write(f.read())
                    out.flush()
                    return EXIT_OK
                time.sleep(0.1)
        except KeyboardInterrupt:
            return EXIT_OK


def cmd_export(args) -> int:
    from tui_trainer.runs.export import write_csv
    run = _store(args).get(args.run)
    if not args.csv:
        from tui_trainer.export.commands import export_command  # torch/tensorboard load only in there
        return export_command(run, hf=args.hf, tensorboard=args.tensorboard, step=args.step,
                              output=args.output)
    if args.output:
        from tui_trainer.runs.export import export_csv_file
        rows = export_csv_file(run, args.output, _store(args).root)  # temp file + rename, never over a run file
        print(f"wrote {rows} rows to {args.output}", file=sys.stderr)
    else:
        write_csv(run, sys.stdout)
    return EXIT_OK


def cmd_control(args) -> int:
    run = _store(args).get(args.run)
    payload = {"prompt": args.prompt} if args.prompt is not None else {}
    if args.prompt is not None and args.action != "sample":
        print("gpt-console: --prompt only applies to 'sample'", file=sys.stderr)
        return EXIT_USAGE
    if args.no_wait:
        request_id = run.send_control(args.action, **payload)
        print(f"sent {args.action} to {run.id} (request {request_id})")
        return EXIT_OK
    print(f"asking {run.id} to {args.action} at its next step boundary...", flush=True)
    offset = _end_offset(run)
    ack = run.control(args.action, timeout=args.timeout, **payload)
    print(describe_event(ack))
    if not ack.get("ok"):
        return EXIT_FAILED
    # Show what the request produced (the sample texts, the eval results, the checkpoint path).
    wanted = {"sample": ("sample",), "eval": ("val", "hellaswag"), "checkpoint": ("checkpoint",)}.get(args.action, ())
    for event in run.follower(offset):
        if event["type"] in wanted and event.get("step") == ack.get("step"):
            print(describe_event(event))
    return EXIT_OK


def cmd_delete(args) -> int:
    store = _store(args)
    run = store.get(args.run)
    if not args.yes:
        if not sys.stdin.isatty():
            print("gpt-console: deleting needs --yes when not run interactively", file=sys.stderr)
            return EXIT_USAGE
        answer = input(f"delete {run.dir} and all its checkpoints? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("kept")
            return EXIT_OK
    store.delete(run)
    print(f"deleted {run.id}")
    return EXIT_OK


def cmd_prepare(args) -> int:
    from tui_trainer.training.prepare import main as prepare_main
    argv = ["--config", args.config]
    for override in args.overrides:
        argv += ["--set", override]
    if args.hellaswag:
        argv.append("--hellaswag")
    return int(prepare_main(argv) or 0)


def cmd_plot(args) -> int:
    from tui_trainer.app.plot_cli import plot_run
    return plot_run(_store(args).get(args.run), args, sys.stdout)


COMMANDS = {"run": cmd_run, "runs": cmd_runs, "attach": cmd_attach, "stop": cmd_stop, "resume": cmd_resume,
            "logs": cmd_logs, "export": cmd_export, "control": cmd_control, "status": cmd_status,
            "delete": cmd_delete, "prepare": cmd_prepare, "plot": cmd_plot}


# ------------------------------------------------------------------------------------------ following
def _end_offset(run: Run) -> int:
    from tui_trainer.runs.control import end_of_log
    return end_of_log(run.events_file)


class ProgressPrinter:
    """The live line: rewritten in place on a terminal, printed every few seconds into a file or pipe."""

    def __init__(self, out: TextIO):
        self.out = out
        self.tty = out.isatty()
        self.shown = ""
        self.last_print = 0.0

    def line(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if text != self.shown:
                width = max(20, _terminal_width() - 1)
                self.out.write("\r\x1b[2K" + text[:width])
                self.out.flush()
                self.shown = text
        elif text != self.shown and (force or now - self.last_print >= NON_TTY_PROGRESS_EVERY_S):
            self.out.write(text + "\n")
            self.out.flush()
            self.shown, self.last_print = text, now

    def message(self, text: str) -> None:
        if self.tty and self.shown:
            self.out.write("\r\x1b[2K")
        self.out.write(text + "\n")
        if self.tty and self.shown:
            self.out.write(self.shown[:max(20, _terminal_width() - 1)])
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self.shown:
            self.out.write("\n")
            self.out.flush()
            self.shown = ""


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 120


class _Following:
    """What a follow loop has read so far, so it carries on unchanged after a Ctrl-C answered 'continue'."""

    def __init__(self, run: Run, out: TextIO):
        self.follower = run.follower(0)
        self.summary = RunSummary()
        self.printer = ProgressPrinter(out)
        self.pending: deque[dict] = deque()  # events read but not yet shown (a Ctrl-C may land mid-batch)
        self.replayed = False
        self.stopping = False


def follow(run: Run, *, out: TextIO | None = None) -> int:
    """Replay the run's events, then follow them live until the run is over. Returns the exit code.

    History is folded quietly and summarised; live events (samples, evaluations, checkpoints, errors) are
    printed as they arrive under a progress line. Ctrl-C asks whether to stop the run or detach (on a
    terminal); without a terminal it detaches.
    """
    out = out or sys.stdout
    state = _Following(run, out)
    while True:
        try:
            return _follow_to_end(run, state, out)
        except KeyboardInterrupt:
            state.printer.finish()
            choice = _ask_on_interrupt(run, state.stopping)
            if choice == "detach":
                print(f"detached; {run.id} keeps running — `gpt-console attach {run.id}` follows it again",
                      file=out, flush=True)
                return EXIT_OK
            if choice == "stop":
                from tui_trainer.runs.launcher import request_stop
                try:
                    request_stop(run)
                    state.stopping = True
                    state.printer.message("stop requested: the trainer checkpoints at the next step boundary...")
                except RunNotRunning:
                    pass
            elif choice == "kill":
                from tui_trainer.runs.launcher import kill_launch
                kill_launch(run)
                state.printer.message("killed")


def _follow_to_end(run: Run, state: _Following, out: TextIO) -> int:
    follower, summary, printer = state.follower, state.summary, state.printer
    if not state.replayed:
        while batch := follower.poll(max_events=5000):
            for event in batch:
                summary.apply(event)
        state.replayed = True
        if summary.events:
            _print_replay(printer, summary, follower.skipped)
        printer.line(progress_line(summary, time.time()), force=True)

    def show(events: list[dict]) -> None:
        state.pending.extend(events)
        while state.pending:
            event = state.pending[0]
            summary.apply(event)
            state.pending.popleft()
            text = describe_event(event)
            if text:
                printer.message(text)

    last_status_check = 0.0
    while True:
        batch = follower.poll(max_events=5000)
        show(batch)
        if len(batch) == 5000:  # more is waiting: catch up before sleeping
            continue
        now = time.monotonic()
        if now - last_status_check >= 1.0 or follower.ended:
            last_status_check = now
            status = run.status()
            if status.final:
                show(follower.poll())  # anything written between the last poll and the exit
                if summary.step is not None:
                    printer.line(progress_line(summary, time.time()), force=True)
                printer.finish()
                print(f"{run.id}: {status.label}" + (f" — {status.reason}" if status.reason else ""),
                      file=out, flush=True)
                return STATE_EXIT.get(status.state, EXIT_FAILED)
        printer.line(progress_line(summary, time.time()))
        time.sleep(0.1)


def _print_replay(printer: ProgressPrinter, s: RunSummary, skipped: int) -> None:
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.started_at)) if s.started_at else "?"
    printer.message(f"history: {s.events} events since {started}" + (f", {s.resumes} resume(s)" if s.resumes else "")
                    + (f", {skipped} unreadable line(s) skipped" if skipped else ""))
    if s.hellaswag_acc_norm is not None:
        printer.message(f"HellaSwag at step {s.hellaswag_step}: acc_norm {s.hellaswag_acc_norm:.4f}")
    if s.best_val is not None:
        printer.message(f"best validation loss {s.best_val:.4f} at step {s.best_val_step}")
    if s.last_sample:
        printer.message(describe_event(s.last_sample) or "")
    if s.last_error:
        printer.message(f"ERROR: {s.last_error}")  # as describe_event words it live: one wording either way


def _ask_on_interrupt(run: Run, stopping: bool) -> str:
    """'stop', 'kill', 'detach' or 'continue'. Without a terminal to ask on, detach."""
    if not sys.stdin.isatty():
        return "detach"
    if stopping:
        prompt = f"\n{run.id} is stopping. [k]ill it now, [d]etach, or [c]ontinue following? "
        options = {"k": "kill", "d": "detach", "c": "continue", "": "continue"}
    else:
        prompt = f"\n{run.id} keeps running without this terminal. [s]top it (checkpoint first), [d]etach, " \
                 "or [c]ontinue following? "
        options = {"s": "stop", "d": "detach", "c": "continue", "": "continue"}
    while True:
        try:
            answer = input(prompt).strip().lower()[:1]
        except (KeyboardInterrupt, EOFError):
            return "detach"
        if answer in options:
            return options[answer]


if __name__ == "__main__":
    sys.exit(main())
