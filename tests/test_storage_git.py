"""GitRepoStorage against real git repositories: a bare repository as the remote (file:// URL) and a second clone
that pushes behind our back."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from jupyter_assets.auth import Principal
from jupyter_assets.errors import ApiError
from jupyter_assets.service import AssetService, ServiceConfig
from jupyter_assets.storage import StoredFileChanged
from jupyter_assets.storage.git import GitRepoStorage
from jupyter_assets.storage.local import CHUNK_SIZE
from jupyter_assets.uploads import UploadForm

from conftest import png_bytes

KEY = "2026/11/28/0123456789abcdef0123456789abcdef.png"
OTHER_KEY = "2026/11/28/fedcba9876543210fedcba9876543210.png"
TOKEN = "ghp_s3cr3t-T0KEN-value-1234"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Other Writer",
    "GIT_AUTHOR_EMAIL": "other@example.com",
    "GIT_COMMITTER_NAME": "Other Writer",
    "GIT_COMMITTER_EMAIL": "other@example.com",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **IDENTITY}, capture_output=True, text=True, check=True
    )
    return result.stdout


def git_bytes(cwd: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **IDENTITY}, capture_output=True, check=True
    ).stdout


def subjects(remote: Path) -> list[str]:
    return git(remote, "log", "--format=%s", "main").splitlines()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """An empty bare repository: the first write creates the branch."""
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


@pytest.fixture
def storage(remote: Path, tmp_path: Path) -> GitRepoStorage:
    return GitRepoStorage(
        remote_url=remote.as_uri(), owner="octo", repo="pics", ref="main", cache_dir=tmp_path / "cache"
    )


def other_clone(remote: Path, tmp_path: Path) -> Path:
    clone = tmp_path / "other"
    git(tmp_path, "clone", "-q", "-b", "main", remote.as_uri(), str(clone))
    return clone


def push_from_other(clone: Path, path: str, data: bytes) -> None:
    git(clone, "pull", "-q", "--ff-only")
    (clone / path).parent.mkdir(parents=True, exist_ok=True)
    (clone / path).write_bytes(data)
    git(clone, "add", path)
    git(clone, "commit", "-q", "-m", f"Other writer adds {path}")
    git(clone, "push", "-q", "origin", "HEAD:main")


def refuse_pushes(remote: Path, text: str = "policy says no") -> Path:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho '{text}' >&2\nexit 1\n")
    hook.chmod(0o755)
    return hook


def test_put_bytes_read_open_size_round_trip_lands_on_the_remote(storage: GitRepoStorage, remote: Path) -> None:
    data = bytes(range(256)) * 40
    storage.put_bytes(KEY, data)

    assert storage.read(KEY) == data
    assert storage.size(KEY) == len(data)
    assert b"".join(storage.open(KEY)) == data
    assert b"".join(storage.open(KEY, 10, 20)) == data[10:20]
    assert b"".join(storage.open(KEY, 9000)) == data[9000:]
    assert subjects(remote) == [f"Add {KEY} via jupyter-assets"]
    assert git_bytes(remote, "show", f"main:{KEY}") == data
    assert git(remote, "log", "-1", "--format=%an <%ae>", "main").strip() == "jupyter-assets <jupyter-assets@localhost>"


def test_missing_files(storage: GitRepoStorage) -> None:
    assert storage.size(KEY) is None
    with pytest.raises(FileNotFoundError):
        storage.read(KEY)
    with pytest.raises(FileNotFoundError):
        b"".join(storage.open(KEY))


def test_put_moves_a_file_under_base_path_with_an_explicit_message(remote: Path, tmp_path: Path) -> None:
    storage = GitRepoStorage(
        remote_url=remote.as_uri(), ref="main", base_path="\\images/uploads/", cache_dir=tmp_path / "cache"
    )
    source = tmp_path / "incoming.upload"
    source.write_bytes(b"\x89PNG image bytes")

    storage.put(KEY, source, message="Upload the cat picture")

    assert not source.exists()
    assert subjects(remote) == ["Upload the cat picture"]
    assert git_bytes(remote, "show", f"main:images/uploads/{KEY}") == b"\x89PNG image bytes"
    assert storage.read(KEY) == b"\x89PNG image bytes"


def test_delete_commits_the_removal_and_a_missing_file_makes_no_commit(storage: GitRepoStorage, remote: Path) -> None:
    storage.put_bytes(KEY, b"one")
    storage.put_bytes(OTHER_KEY, b"two")

    storage.delete(KEY)
    storage.delete(OTHER_KEY, message="Remove the dog picture")
    storage.delete(KEY)

    assert subjects(remote) == [
        "Remove the dog picture",
        f"Delete {KEY} via jupyter-assets",
        f"Add {OTHER_KEY} via jupyter-assets",
        f"Add {KEY} via jupyter-assets",
    ]
    assert git(remote, "ls-tree", "-r", "--name-only", "main") == ""
    assert storage.size(KEY) is None


def test_writing_the_same_bytes_again_makes_no_commit(storage: GitRepoStorage, remote: Path) -> None:
    storage.put_bytes(KEY, b"same")
    storage.put_bytes(KEY, b"same")
    assert len(subjects(remote)) == 1


def test_a_push_from_another_clone_between_our_writes_is_kept(
    storage: GitRepoStorage, remote: Path, tmp_path: Path
) -> None:
    storage.put_bytes(KEY, b"first")
    other = other_clone(remote, tmp_path)
    push_from_other(other, "README.md", b"other writer")

    storage.put_bytes(OTHER_KEY, b"second")

    assert subjects(remote) == [
        f"Add {OTHER_KEY} via jupyter-assets",
        "Other writer adds README.md",
        f"Add {KEY} via jupyter-assets",
    ]
    assert git(remote, "show", "main:README.md") == "other writer"


def test_a_push_rejected_because_another_clone_won_the_race_is_replayed(
    storage: GitRepoStorage, remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.put_bytes(KEY, b"first")
    other = other_clone(remote, tmp_path)
    real_git = storage.clone._git
    pushes: list[int] = []

    def racing_git(*args: str, network: bool = False) -> subprocess.CompletedProcess[str]:
        # The other writer pushes right after our fetch, just before our first push: that push is rejected.
        if args[0] == "push":
            pushes.append(1)
            if len(pushes) == 1:
                push_from_other(other, "notes/race.txt", b"won the race")
        return real_git(*args, network=network)

    monkeypatch.setattr(storage.clone, "_git", racing_git)
    storage.put_bytes(OTHER_KEY, b"second")

    assert len(pushes) == 2
    assert subjects(remote) == [
        f"Add {OTHER_KEY} via jupyter-assets",
        "Other writer adds notes/race.txt",
        f"Add {KEY} via jupyter-assets",
    ]
    assert git_bytes(remote, "show", f"main:{OTHER_KEY}") == b"second"
    assert git(remote, "show", "main:notes/race.txt") == "won the race"


def test_concurrent_writes_to_one_instance_are_serialised(storage: GitRepoStorage, remote: Path) -> None:
    keys = [f"2026/11/28/{index:032x}.png" for index in range(6)]
    threads = [threading.Thread(target=storage.put_bytes, args=(key, key.encode())) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(git(remote, "ls-tree", "-r", "--name-only", "main").split()) == keys
    assert len(subjects(remote)) == len(keys)


def test_reads_find_a_file_another_writer_pushed(remote: Path, tmp_path: Path) -> None:
    storage = GitRepoStorage(remote_url=remote.as_uri(), ref="main", cache_dir=tmp_path / "cache", fetch_interval=0)
    storage.put_bytes(KEY, b"ours")
    push_from_other(other_clone(remote, tmp_path), OTHER_KEY, b"theirs")

    assert storage.read(OTHER_KEY) == b"theirs"


def test_a_refusing_remote_is_upsert_failed_and_leaves_the_clone_clean(
    storage: GitRepoStorage, remote: Path, tmp_path: Path
) -> None:
    storage.put_bytes(KEY, b"first")
    hook = refuse_pushes(remote)

    with pytest.raises(ApiError) as refused:
        storage.put_bytes(OTHER_KEY, b"refused")

    assert (refused.value.code, refused.value.status) == ("storage_provider_upsert_failed", 400)
    assert "pre-receive hook declined" in refused.value.message
    assert git(storage.worktree, "status", "--porcelain") == ""
    assert git(storage.worktree, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")
    assert storage.size(OTHER_KEY) is None

    hook.unlink()
    storage.put_bytes(OTHER_KEY, b"accepted")
    assert subjects(remote) == [f"Add {OTHER_KEY} via jupyter-assets", f"Add {KEY} via jupyter-assets"]
    assert storage.read(OTHER_KEY) == b"accepted"


def test_a_refused_delete_keeps_the_file(storage: GitRepoStorage, remote: Path) -> None:
    storage.put_bytes(KEY, b"kept")
    refuse_pushes(remote)

    with pytest.raises(ApiError) as refused:
        storage.delete(KEY)

    assert refused.value.code == "storage_provider_upsert_failed"
    assert storage.read(KEY) == b"kept"


def test_a_clone_left_dirty_by_a_crash_is_reset_at_start(remote: Path, tmp_path: Path) -> None:
    GitRepoStorage(remote_url=remote.as_uri(), ref="main", cache_dir=tmp_path / "cache").put_bytes(KEY, b"pushed")
    # A previous run wrote and committed a file, then died before pushing.
    cache = tmp_path / "cache"
    (cache / OTHER_KEY).write_bytes(b"never pushed")
    git(cache, "add", OTHER_KEY)
    git(cache, "commit", "-q", "-m", "unpushed")
    (cache / ".git" / "index.lock").write_text("")

    restarted = GitRepoStorage(remote_url=remote.as_uri(), ref="main", cache_dir=cache, fetch_interval=3600)

    assert restarted.read(KEY) == b"pushed"
    assert restarted.size(OTHER_KEY) is None
    restarted.put_bytes(OTHER_KEY, b"now pushed")
    assert git_bytes(remote, "show", f"main:{OTHER_KEY}") == b"now pushed"


def test_an_unreachable_remote_is_unavailable(tmp_path: Path) -> None:
    storage = GitRepoStorage(remote_url="file:///nonexistent/remote.git", ref="main", cache_dir=tmp_path / "cache")

    for operation in (lambda: storage.put_bytes(KEY, b"x"), lambda: storage.size(KEY), lambda: storage.delete(KEY)):
        with pytest.raises(ApiError) as unavailable:
            operation()
        assert (unavailable.value.code, unavailable.value.status) == ("storage_provider_unavailable", 400)


@pytest.mark.parametrize(
    "key", ["../escape.png", "2026/../../escape.png", "/etc/passwd", "a//b.png", ".git/config", "a\\b.png", ""]
)
def test_keys_that_could_escape_are_refused(storage: GitRepoStorage, key: str) -> None:
    for operation in (
        lambda: storage.put_bytes(key, b"x"),
        lambda: storage.read(key),
        lambda: storage.size(key),
        lambda: storage.delete(key),
        lambda: storage.public_url(key),
    ):
        with pytest.raises(ApiError) as refused:
            operation()
        assert refused.value.code == "storage_provider_storage_key_invalid"


def test_public_url(tmp_path: Path) -> None:
    storage = GitRepoStorage.from_configuration(
        {"owner": "octo", "repo": "pics", "branch": "media/main", "basePath": "img", "visibilityPolicy": "Public-Only"},
        {},
        tmp_path,
    )
    assert storage.remote_url == "https://github.com/octo/pics.git"
    assert storage.public_url("2026/a b#.png") == (
        "https://raw.githubusercontent.com/octo/pics/media/main/img/2026/a%20b%23.png"
    )
    private = GitRepoStorage.from_configuration(
        {"owner": "octo", "repo": "pics", "ref": "main", "visibilityPolicy": "private-token"},
        {"token": TOKEN},
        tmp_path,
    )
    assert private.public_url(KEY) is None
    anonymous_remote = GitRepoStorage.from_configuration(
        {"remoteUrl": "file:///srv/r.git", "ref": "main"}, {}, tmp_path
    )
    assert anonymous_remote.public_url(KEY) is None


def test_configuration_is_normalised(tmp_path: Path) -> None:
    storage = GitRepoStorage.from_configuration(
        {
            "remoteUrl": " git@example.com:team/pics.git ",
            "ref": " main ",
            "branch": "ignored",
            "basePath": "  \\assets\\images/ ",
            "rawBaseUrl": "https://raw.example.com/",
            "visibilityPolicy": "PRIVATE-TOKEN",
        },
        {"token": f"  {TOKEN}  "},
        tmp_path,
    )
    assert (storage.remote_url, storage.ref, storage.base_path) == (
        "git@example.com:team/pics.git",
        "main",
        "assets/images",
    )
    assert (storage.raw_base_url, storage.visibility_policy, storage.token) == (
        "https://raw.example.com",
        "private-token",
        TOKEN,
    )


@pytest.mark.parametrize(
    ("configuration", "secrets", "code"),
    [
        ({"repo": "pics", "ref": "main"}, {}, "storage_provider_profile_github_owner_required"),
        ({"owner": "oc to", "repo": "pics", "ref": "main"}, {}, "storage_provider_profile_github_owner_invalid"),
        ({"owner": "octo", "ref": "main"}, {}, "storage_provider_profile_github_repo_required"),
        ({"owner": "octo", "repo": "pi/cs", "ref": "main"}, {}, "storage_provider_profile_github_repo_invalid"),
        (
            {"remoteUrl": "file:///r.git", "owner": "o$", "ref": "main"},
            {},
            "storage_provider_profile_github_owner_invalid",
        ),
        (
            {"remoteUrl": "file:///r.git", "repo": "r?", "ref": "main"},
            {},
            "storage_provider_profile_github_repo_invalid",
        ),
        ({"owner": "octo", "repo": "pics"}, {}, "storage_provider_profile_github_repo_ref_required"),
        ({"owner": "octo", "repo": "pics", "ref": "  "}, {}, "storage_provider_profile_github_repo_ref_required"),
        ({"owner": "octo", "repo": "pics", "ref": "my branch"}, {}, "storage_provider_profile_github_repo_ref_invalid"),
        ({"owner": "octo", "repo": "pics", "branch": "a\\b"}, {}, "storage_provider_profile_github_repo_ref_invalid"),
        ({"owner": "octo", "repo": "pics", "ref": "--force"}, {}, "storage_provider_profile_github_repo_ref_invalid"),
        (
            {"owner": "o", "repo": "r", "ref": "m", "basePath": "a/../b"},
            {},
            "storage_provider_profile_github_path_prefix_invalid",
        ),
        (
            {"owner": "o", "repo": "r", "ref": "m", "basePath": "./a"},
            {},
            "storage_provider_profile_github_path_prefix_invalid",
        ),
        (
            {"owner": "o", "repo": "r", "ref": "m", "basePath": "a//b"},
            {},
            "storage_provider_profile_github_path_prefix_invalid",
        ),
        (
            {"owner": "o", "repo": "r", "ref": "m", "basePath": ".git"},
            {},
            "storage_provider_profile_github_path_prefix_invalid",
        ),
        (
            {"owner": "o", "repo": "r", "ref": "m", "visibilityPolicy": "public-first"},
            {},
            "storage_provider_profile_github_visibility_policy_invalid",
        ),
        (
            {"owner": "o", "repo": "r", "ref": "m"},
            {"token": " short  "},
            "storage_provider_profile_github_token_invalid",
        ),
        (
            {"owner": "o", "repo": "r", "ref": "m", "visibilityPolicy": "private-token"},
            {},
            "storage_provider_profile_github_repo_token_required_for_private",
        ),
        (
            {"owner": "o", "repo": "r", "ref": "m", "rawBaseUrl": "raw.example.com"},
            {},
            "storage_provider_profile_github_repo_raw_base_url_invalid",
        ),
        ({"owner": "o", "repo": 7, "ref": "m"}, {}, "storage_provider_profile_configuration_invalid"),
        ({"owner": "o", "repo": "r", "ref": ["m"]}, {}, "storage_provider_profile_configuration_invalid"),
        (
            {"owner": "o", "repo": "r", "ref": "m"},
            {"token": 12345678},
            "storage_provider_profile_configuration_invalid",
        ),
        ({"remoteUrl": "-uupload-pack=touch x", "ref": "m"}, {}, "storage_provider_profile_configuration_invalid"),
        (
            {"remoteUrl": f"https://x-access-token:{TOKEN}@github.com/o/r.git", "ref": "m"},
            {},
            "storage_provider_profile_configuration_invalid",
        ),
    ],
)
def test_configuration_validation(configuration: dict, secrets: dict, code: str, tmp_path: Path) -> None:
    with pytest.raises(ApiError) as invalid:
        GitRepoStorage.from_configuration(configuration, secrets, tmp_path)
    assert (invalid.value.code, invalid.value.status) == (code, 400)


def test_configuration_must_be_an_object(tmp_path: Path) -> None:
    with pytest.raises(ApiError) as invalid:
        GitRepoStorage.from_configuration(["not", "an", "object"], {}, tmp_path)  # type: ignore[arg-type]
    assert invalid.value.code == "storage_provider_profile_configuration_invalid"


@pytest.fixture
def refusing_http_remote() -> Iterator[tuple[str, list[str]]]:
    """An HTTP git remote that records the Authorization headers it receives and answers 401."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/octo/pics.git", seen
    server.shutdown()
    server.server_close()


def assert_no_token(storage: GitRepoStorage, text: str) -> None:
    encoded = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert TOKEN not in text and encoded not in text
    for path in (storage.worktree / ".git").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert TOKEN.encode() not in content and encoded.encode() not in content, path


def test_the_token_goes_in_a_header_and_never_leaks(
    refusing_http_remote: tuple[str, list[str]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, seen = refusing_http_remote
    argv: list[str] = []
    real_run = subprocess.run

    def recording_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        argv.extend(command)
        return real_run(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("jupyter_assets.storage.git_clone.subprocess.run", recording_run)
    caplog.set_level(logging.DEBUG)
    storage = GitRepoStorage(remote_url=url, ref="main", token=TOKEN, cache_dir=tmp_path / "cache")

    with pytest.raises(ApiError) as failed:
        storage.put_bytes(KEY, b"x")

    assert failed.value.code == "storage_provider_unavailable"
    assert url in failed.value.message  # git's own message named the URL, scrubbed or not
    assert seen and set(seen) == {"Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()}
    assert_no_token(storage, failed.value.message + caplog.text + " ".join(argv))


def test_git_output_that_echoes_the_token_is_scrubbed(
    remote: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    encoded = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    storage = GitRepoStorage(remote_url=remote.as_uri(), ref="main", token=TOKEN, cache_dir=tmp_path / "cache")
    refuse_pushes(remote, f"denied for {TOKEN} (Basic {encoded}) at https://user:{TOKEN}@example.com/x.git")
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ApiError) as refused:
        storage.put_bytes(KEY, b"x")

    assert "denied for ***" in refused.value.message and "https://***@example.com" in refused.value.message
    assert_no_token(storage, refused.value.message + caplog.text)


@pytest.mark.parametrize(
    ("link", "target", "key"),
    [
        (OTHER_KEY, "../../../.git/config", OTHER_KEY),
        (OTHER_KEY, "/etc/hostname", OTHER_KEY),
        ("linked", ".git", "linked/config"),
        ("linked", "{outside}", "linked/secret.png"),
    ],
)
def test_symlinks_in_the_repository_are_not_followed(
    remote: Path, tmp_path: Path, link: str, target: str, key: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"not in the repository")
    storage = GitRepoStorage(remote_url=remote.as_uri(), ref="main", cache_dir=tmp_path / "cache", fetch_interval=0)
    storage.put_bytes(KEY, b"ours")
    other = other_clone(remote, tmp_path)
    (other / link).parent.mkdir(parents=True, exist_ok=True)
    (other / link).symlink_to(target.format(outside=outside))
    git(other, "add", link)
    git(other, "commit", "-q", "-m", "a symlink")
    git(other, "push", "-q", "origin", "HEAD:main")

    for operation in (lambda: storage.read(key), lambda: storage.put_bytes(key, b"x")):
        with pytest.raises(ApiError) as refused:
            operation()
        assert refused.value.code == "storage_provider_storage_key_invalid"
    assert (outside / "secret.png").read_bytes() == b"not in the repository"


def test_a_rewrite_in_place_is_one_commit_of_new_bytes_under_the_same_path(remote: Path, tmp_path: Path) -> None:
    """A watermark on an asset stored in git: the original's path stays, and one commit changes its bytes."""
    service = AssetService(ServiceConfig(root_dir=tmp_path / "library", public_base_url="http://x", workers=0))
    try:
        admin = Principal("t", frozenset({"assets:read", "assets:write", "assets:admin"}), "api_key")
        body = {
            "name": "repo",
            "providerType": "github-repo",
            "isDefault": True,
            "configuration": {"remoteUrl": remote.as_uri(), "owner": "octo", "repo": "pics", "ref": "main"},
        }
        service.profiles.create(admin, body)
        data = png_bytes(120, 90)
        descriptor, path = service.uploads.new_incoming_file()
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        form = UploadForm(True, "x.png", "image/png", path, len(data), hashlib.sha256(data).hexdigest(), {})
        asset = service.uploads.create(admin, form)
        commits = len(subjects(remote))
        after = service.skill_runs.run(admin, asset.id, "watermark", {"opacity": 1})["asset"]
        assert after.storage_key == asset.storage_key
        changed = git(remote, "log", "--format=", "--name-only", f"main~{len(subjects(remote)) - commits}..main")
        assert changed.split().count(asset.storage_key) == 1  # one commit for the original (the other: a thumbnail)
        stored = git_bytes(remote, "show", f"main:{asset.storage_key}")
        assert stored != data and hashlib.sha256(stored).hexdigest() == after.checksum_sha256
    finally:
        service.close()


def test_a_rewrite_of_a_file_being_read_leaves_its_reader_the_old_bytes(storage: GitRepoStorage, remote: Path) -> None:
    """A rewrite in place replaces a file that a reader may be half way through: the new bytes go to a temporary
    file renamed over it, so the reader ends the old file (never half old, half new), and the next read gets the
    new one."""
    old, new = os.urandom(3 * CHUNK_SIZE), os.urandom(2 * CHUNK_SIZE + 17)
    storage.put_bytes(KEY, old)
    reader = storage.open(KEY, expected_size=len(old))
    first = next(reader)
    storage.put_bytes(KEY, new)
    assert first + b"".join(reader) == old
    assert storage.read(KEY) == new and git_bytes(remote, "show", f"main:{KEY}") == new
    with pytest.raises(StoredFileChanged):  # a reader that looked the old size up is told, before any byte
        next(storage.open(KEY, expected_size=len(old)))
    assert [path.name for path in storage.worktree.rglob("*.partial")] == []
