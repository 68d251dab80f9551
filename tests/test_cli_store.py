"""Where the client keeps secrets: which store is chosen (deterministically), the keyring store
over an in-memory keyring backend (never the machine's real keyring), and atomic 0600 files."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from tokengate_cli.source import cache_key, normalize_scope
from tokengate_cli.store import (
    FileStore,
    KeyringStore,
    atomic_write,
    choose_store_kind,
    keyring_available,
    open_store,
    read_json,
)


class MemoryKeyring(KeyringBackend):
    """A keyring backend that lives in this process (the test's own, like a real backend)."""

    priority = 5

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    monkeypatch.delenv("TOKENGATE_HOME", raising=False)
    saved = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(saved)


def test_a_real_keyring_backend_is_chosen(memory_keyring: MemoryKeyring) -> None:
    assert keyring_available() and choose_store_kind() == "keyring"


@pytest.mark.parametrize("backend", [fail.Keyring, null.Keyring])
def test_the_fail_and_null_backends_mean_files(
    memory_keyring: MemoryKeyring, backend: type[KeyringBackend]
) -> None:
    keyring.set_keyring(backend())
    assert not keyring_available() and choose_store_kind() == "file"


def test_tokengate_home_always_means_files(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOKENGATE_HOME", str(tmp_path))
    assert choose_store_kind() == "file"
    assert isinstance(open_store(tmp_path, "keyring"), FileStore)  # even if login chose keyring


def test_the_keyring_store_round_trips_and_keys_by_home(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    one, two = KeyringStore(tmp_path / "one"), KeyringStore(tmp_path / "two")
    one.put("session", {"refresh_token": "r1"})
    assert one.get("session") == {"refresh_token": "r1"}
    assert two.get("session") is None
    one.delete("session")
    one.delete("session")  # deleting what is gone is fine
    assert one.get("session") is None and memory_keyring.entries == {}
    assert not list(tmp_path.iterdir())  # nothing secret on disk


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_file_store_round_trips_any_document_privately(document: dict[str, Any]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory) / "home"
        store = FileStore(home)
        store.put("tokens", document)
        assert store.get("tokens") == document
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert stat.S_IMODE((home / "tokens.json").stat().st_mode) == 0o600
        assert [p.name for p in home.iterdir()] == ["tokens.json"]


def test_a_damaged_file_reads_as_absent(tmp_path: Path) -> None:
    (tmp_path / "session.json").write_text("{not json")
    assert read_json(tmp_path / "session.json") is None
    (tmp_path / "session.json").write_text(json.dumps([1, 2]))
    assert FileStore(tmp_path).get("session") is None


def test_atomic_write_replaces_without_a_window(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    atomic_write(target, "one")
    first = target.stat().st_ino
    atomic_write(target, "two")
    assert target.read_text() == "two" and target.stat().st_ino != first  # renamed into place


@given(st.lists(st.sampled_from(["read", "write", "admin", "x:y"]), max_size=6))
def test_cache_keys_ignore_scope_order_and_repeats(scopes: list[str]) -> None:
    shuffled = list(reversed(scopes)) + scopes[:1]
    assert cache_key("https://a", None, None, " ".join(scopes)) == cache_key(
        "https://a", None, None, " ".join(shuffled)
    )
    assert normalize_scope(" ".join(scopes)).split() == sorted(set(scopes))
