"""ScriptBatch after Redis forgot its scripts (SCRIPT FLUSH, as a restart does)."""

from __future__ import annotations

import pytest
from redis.exceptions import NoScriptError

from geventq.scripts import ScriptBatch


def test_a_script_call_is_loaded_and_sent_again(connection):
    connection.sadd("t:paused", "q")
    connection.script_flush()
    batch = ScriptBatch()
    batch.add("unpause", ["t:paused", "t:queue", "t:wake"], ["q"])
    batch.command("SCARD", "t:paused")  # runs in the first pass, before the script's retry
    assert batch.execute(connection) == [1, 1]
    assert not connection.sismember("t:paused", "q")


def test_a_plain_commands_noscript_reply_raises_as_it_is(connection):
    """A plain command has no script to load: its NOSCRIPT is an error reply like any other
    (it used to send the batch looking for a script file named None)."""
    batch = ScriptBatch()
    batch.command("EVALSHA", "0" * 40, 0)
    with pytest.raises(NoScriptError):
        batch.execute(connection)
