"""Options every command takes in either place: ``recsys -v train`` and ``recsys train -v``."""
import pytest

from recsys.cli import build_parser


@pytest.mark.parametrize("argv,verbose", [
    (["train"], False), (["-v", "train"], True), (["train", "-v"], True), (["train", "--verbose"], True),
    (["data", "info", "folder", "-v"], True), (["export", "run", "-v"], True), (["export", "run"], False),
])
def test_verbose_before_or_after_the_command(argv, verbose):
    assert build_parser().parse_args(argv).verbose is verbose
