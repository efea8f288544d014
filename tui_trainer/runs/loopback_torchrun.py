"""torchrun for one machine whose rendezvous stores listen on 127.0.0.1 only.

    python -m tui_trainer.runs.loopback_torchrun --nnodes=1 --rdzv_backend=c10d \
        --rdzv_endpoint=127.0.0.1:0 ... -m tui_trainer.training.train ...

``torchrun --standalone``, and even an explicit ``--rdzv_endpoint=127.0.0.1:PORT``, open their TCP stores (the
rendezvous store, and the store torchrun hands the ranks as MASTER_ADDR/PORT) on every interface: anyone who
can reach the machine can talk to them while a run trains. TCPStore can serve on a socket it is given
(``master_listen_fd``), so each store this process serves gets one bound to 127.0.0.1 first; everything else
is torchrun unchanged. Port 0 asks the kernel for a free port when the store is made, so two launches never
race for one. The launcher uses this for every single-node launch; several nodes need a reachable endpoint
and keep plain torchrun.
"""

from __future__ import annotations

import socket
import sys

LOOPBACK = "127.0.0.1"
_sockets: list[socket.socket] = []  # the listening sockets, alive as long as this process


def loopback_listener(port: int) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:``port`` (0: a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(512)
    return sock


def patch_tcp_store() -> bool:
    """Make every TCPStore server this process creates listen on loopback. False if torch's layout changed."""
    import torch.distributed as dist
    try:
        from torch.distributed.elastic.rendezvous import c10d_rendezvous_backend
    except ImportError:
        return False
    original = dist.TCPStore
    if getattr(original, "_loopback_only", False) or c10d_rendezvous_backend.TCPStore is not original:
        return False

    def loopback_tcp_store(host_name, port, world_size=None, is_master=False, *args, **kwargs):
        if is_master and kwargs.get("master_listen_fd") is None:
            sock = loopback_listener(int(port))
            _sockets.append(sock)
            kwargs["master_listen_fd"] = sock.fileno()
            port = sock.getsockname()[1]
        return original(host_name, port, world_size, is_master, *args, **kwargs)

    loopback_tcp_store._loopback_only = True  # type: ignore[attr-defined]
    dist.TCPStore = loopback_tcp_store
    c10d_rendezvous_backend.TCPStore = loopback_tcp_store
    return True


def main() -> int:
    if not patch_tcp_store():
        print("=== gpt-console: warning: this torch's rendezvous code is not the one expected; its stores "
              "may listen on every interface", file=sys.stderr, flush=True)
    from torch.distributed.run import main as torchrun_main
    sys.argv[0] = "torchrun"
    torchrun_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
