"""JAX's compilation cache: used only in a folder private to this user, never over the user's own settings."""

import os

import pytest

from nnrun import jax_cache


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A cache home of its own, and no cache settings in the environment (conftest sets the tests' own)."""
    for name in (jax_cache.DIR, jax_cache.MAX_SIZE, jax_cache.MIN_COMPILE_S):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_cache_is_a_private_bounded_folder_under_xdg_cache_home(home):
    assert jax_cache.enable() == home / "nnrun" / "jax"
    assert os.environ[jax_cache.DIR] == str(home / "nnrun" / "jax")
    assert (home / "nnrun" / "jax").stat().st_mode & 0o777 == 0o700
    assert int(os.environ[jax_cache.MAX_SIZE]) == 1 << 30  # bounded, so JAX writes under a lock
    assert os.environ[jax_cache.MIN_COMPILE_S] == "0"


def test_the_users_own_cache_settings_win(home, monkeypatch):
    monkeypatch.setenv(jax_cache.DIR, "/somewhere/else")
    monkeypatch.setenv(jax_cache.MAX_SIZE, "-1")
    assert jax_cache.enable() is None
    assert os.environ[jax_cache.DIR] == "/somewhere/else" and os.environ[jax_cache.MAX_SIZE] == "-1"
    assert not home.exists()


@pytest.mark.parametrize("where", ["folder", "parent"])
def test_a_folder_others_can_write_is_not_used(home, where):
    folder = home / "nnrun" / "jax"
    folder.mkdir(parents=True)
    (folder if where == "folder" else folder.parent).chmod(0o777)
    assert jax_cache.enable() is None
    assert jax_cache.DIR not in os.environ


def test_a_link_in_place_of_the_folder_is_not_followed(home, tmp_path):
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (home / "nnrun").mkdir(parents=True)
    (home / "nnrun" / "jax").symlink_to(tmp_path / "elsewhere")
    assert jax_cache.enable() is None
    assert jax_cache.DIR not in os.environ


def test_a_file_where_the_folder_should_be_leaves_jax_compiling_as_before(home):
    home.mkdir()
    (home / "nnrun").write_text("not a folder")
    assert jax_cache.enable() is None
    assert jax_cache.DIR not in os.environ


def test_a_umask_that_lets_the_group_write_still_makes_a_private_cache(home):
    previous = os.umask(0o002)
    try:
        assert jax_cache.enable() == home / "nnrun" / "jax"
    finally:
        os.umask(previous)
    assert (home / "nnrun").stat().st_mode & 0o777 == 0o700
