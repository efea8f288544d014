"""One base class for problems the user can fix (issue 11): the trainer shows them without a traceback."""

from __future__ import annotations

import pytest

from tui_trainer.channel.diskfull import DiskFull
from tui_trainer.training.lib.config import ConfigError, load_config
from tui_trainer.training.lib.distributed import SetupError
from tui_trainer.training.lib.errors import BatchSizeError, UserError, is_user_error
from tui_trainer.training.lib.rundir import ResumeConflict
from tui_trainer.training.lib.sources import DataError
from tui_trainer.training.lib.startup import grad_accum_steps_for
from tui_trainer.training.lib.tokenizer import TokenizerUnavailable


@pytest.mark.parametrize("cls", [ConfigError, DataError, TokenizerUnavailable, ResumeConflict, SetupError,
                                 BatchSizeError])
def test_every_lib_user_error_derives_from_the_one_base_class(cls):
    assert issubclass(cls, UserError)


def test_is_user_error_tells_user_errors_from_bugs():
    assert is_user_error(DataError("no shards")) and is_user_error(DiskFull("disk full: /x"))
    assert not is_user_error(RuntimeError("a bug")) and not is_user_error(KeyError("x"))


def test_a_batch_that_does_not_split_over_the_ranks_is_a_user_error():
    cfg = load_config(None, ["optim.total_batch_size=4096", "optim.micro_batch_size=4", "model.block_size=256"])
    assert grad_accum_steps_for(cfg, 2) == 2
    with pytest.raises(BatchSizeError, match="not a multiple of micro_batch_size × block_size × 3 ranks"):
        grad_accum_steps_for(cfg, 3)
