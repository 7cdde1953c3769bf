"""Files in a git repository (provider type ``github-repo``), written by driving ``git`` itself.

Each instance keeps a local clone under its ``cache_dir``. A write brings the clone to the remote's tip, changes one
file, commits and pushes; when someone else pushed first the change is replayed on the new tip (a rebase of a
one-file commit, which cannot conflict) and pushed again. Reads come from the clone's work tree."""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

from ..errors import ApiError
from . import check_key
from .local import read_range

log = logging.getLogger(__name__)

DEFAULT_RAW_BASE_URL = "https://raw.githubusercontent.com"
VISIBILITY_POLICIES = ("public-only", "private-token")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
# What git itself refuses in a branch name (git check-ref-format), plus a leading '-' so a ref is never an option.
REF_FORBIDDEN = re.compile(r"[\s\\~^:?*\[\x00-\x1f\x7f]|\.\.|@\{|//|^[-/.]|/\.|[/.]$|\.lock$|^@$")
# Where git names the repository location: inherited from a hook or a shell, they would point git elsewhere.
INHERITED_GIT_LOCATION = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
)


class GitRepoStorage:
    """Files at ``<basePath>/<storageKey>`` on branch ``ref`` of a git remote."""

    name = "github-repo"
    put_copies = False

    def __init__(
        self,
        *,
        ref: str,
        cache_dir: Path,
        remote_url: str | None = None,
        owner: str | None = None,
        repo: str | None = None,
        base_path: str = "",
        raw_base_url: str = DEFAULT_RAW_BASE_URL,
        visibility_policy: str = "public-only",
        token: str | None = None,
        author_name: str = "jupyter-assets",
        author_email: str = "jupyter-assets@localhost",
        fetch_interval: float = 5.0,
        push_attempts: int = 5,
        network_timeout: float = 120.0,
    ) -> None:
        self.remote_url = _remote_url(remote_url, owner, repo)
        self.owner = _owner(owner)
        self.repo = _repo(repo)
        self.ref = _ref(ref)
        self.base_path = normalize_base_path(base_path)
        self.raw_base_url = _raw_base_url(raw_base_url)
        self.visibility_policy = _visibility_policy(visibility_policy)
        self.token = _token(token)
        if self.visibility_policy == "private-token" and self.token is None:
            raise ApiError(
                "storage_provider_profile_github_repo_token_required_for_private",
                "A token is required when visibilityPolicy is 'private-token'.",
                400,
            )
        self.worktree = cache_dir
        self.fetch_interval = fetch_interval
        self.push_attempts = push_attempts
        self.network_timeout = network_timeout
        self._env = self._git_environment(author_name, author_email)
        self._secrets = self._secret_forms()
        self._lock = threading.Lock()
        self._ready = False
        self._last_fetch: float | None = None

    @classmethod
    def from_configuration(
        cls, configuration: Mapping[str, object], secrets: Mapping[str, object] | None, cache_dir: Path
    ) -> GitRepoStorage:
        """A storage from a profile's camelCase configuration and secrets, validated (400 ApiError otherwise)."""
        if not isinstance(configuration, Mapping) or not (secrets is None or isinstance(secrets, Mapping)):
            raise _configuration_invalid("The configuration and the secrets must be JSON objects.")
        values = {key: _optional_string(configuration, key) for key in _CONFIGURATION_KEYS}
        return cls(
            remote_url=values["remoteUrl"],
            owner=values["owner"],
            repo=values["repo"],
            ref=values["ref"] or values["branch"] or "",
            base_path=values["basePath"] or "",
            raw_base_url=values["rawBaseUrl"] or DEFAULT_RAW_BASE_URL,
            visibility_policy=values["visibilityPolicy"] or "public-only",
            token=_optional_string(secrets or {}, "token"),
            cache_dir=cache_dir,
        )

    # -- the Storage protocol -------------------------------------------------------------------------------------

    def put(
        self, key: str, source: Path, message: str | None = None, sha256: str | None = None, data: bytes | None = None
    ) -> None:
        """Commit the file at ``source`` under ``key`` and push it; the source is removed once the push landed."""
        path = self.repository_path(key)

        def write(destination: Path) -> None:
            shutil.copyfile(source, destination)

        self._commit_file(path, write, message)
        source.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._commit_file(self.repository_path(key), lambda destination: destination.write_bytes(data))

    def open(
        self, key: str, start: int = 0, end: int | None = None, expected_size: int | None = None
    ) -> Iterator[bytes]:
        yield from read_range(self._readable(key), start, end, expected_size)

    def read(self, key: str) -> bytes:
        return self._readable(key).read_bytes()

    def size(self, key: str) -> int | None:
        try:
            return self._readable(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str, message: str | None = None) -> None:
        """Remove the file with a commit; a file the branch does not have is not an error (and makes no commit)."""
        path = self.repository_path(key)
        self._write(lambda: self._remove(path), message or f"Delete {path} via jupyter-assets")

    def redirect_url(self, key: str) -> str | None:
        return self.public_url(key)

    def public_url(self, key: str) -> str | None:
        path = self.repository_path(key)
        if self.visibility_policy != "public-only" or not (self.owner and self.repo):
            return None
        return f"{self.raw_base_url}/{self.owner}/{self.repo}/{quote(self.ref, safe='/')}/{quote(path)}"

    # -- paths ----------------------------------------------------------------------------------------------------

    def repository_path(self, key: str) -> str:
        """``<basePath>/<key>``. check_key keeps the key relative; a ``.git`` segment would write into git's own
        directory of the clone, so it is refused too."""
        check_key(key)
        if any(segment.lower() == ".git" for segment in key.split("/")):
            raise ApiError("storage_provider_storage_key_invalid", f"Invalid storage key '{key}'.", 400)
        return f"{self.base_path}/{key}" if self.base_path else key

    def _work_file(self, path: str) -> Path:
        """The work-tree file of a repository path. The remote's content could hold symlinks (pointing out of the
        work tree, or into .git): our files are never symlinks, and their directory must really be in the work tree."""
        candidate = self.worktree / path
        root = self.worktree.resolve()
        parent = candidate.parent.resolve()
        if candidate.is_symlink() or not parent.is_relative_to(root) or parent.is_relative_to(root / ".git"):
            raise ApiError("storage_provider_storage_key_invalid", f"Invalid repository path '{path}'.", 400)
        return candidate

    # -- reads ----------------------------------------------------------------------------------------------------

    def _readable(self, key: str) -> Path:
        """The clone's file for ``key``. A stored file changes only through this instance (a rewrite in place,
        whose commit updates the clone), so only a miss is worth a fetch (at most one every ``fetch_interval``
        seconds): another writer of the same branch may have added it."""
        path = self.repository_path(key)
        if not self._ready:
            with self._lock:
                self._ensure_repository()
        file = self._work_file(path)
        if file.is_file():
            return file
        # A write in progress fetches anyway: do not queue behind its push.
        stale = self._last_fetch is None or time.monotonic() - self._last_fetch >= self.fetch_interval
        if stale and self._lock.acquire(blocking=False):
            try:
                self._sync()
            finally:
                self._lock.release()
        file = self._work_file(path)  # checked again: the fetch may have brought a symlink
        if not file.is_file():
            raise FileNotFoundError(path)
        return file

    # -- writes ---------------------------------------------------------------------------------------------------

    def _commit_file(self, path: str, write: Callable[[Path], object], message: str | None = None) -> None:
        """``write`` fills a temporary file beside the clone's file, renamed over it: a reader of the clone gets
        the old file or the new one, never a half-written one (a rewrite in place replaces a file being read). A
        temporary file left by a crash is untracked, and the reset of the next write or start removes it."""

        def apply() -> None:
            destination = self._work_file(path)
            destination.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=".", suffix=".partial")
            os.close(descriptor)
            temp = Path(temp_name)
            try:
                write(temp)
                temp.chmod(0o644)  # mkstemp makes it private; the clone's files are not
                os.replace(temp, destination)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            # -f: a .gitignore in the repository must not hide our files.
            self._check(self._git("add", "-f", "--", path))

        self._write(apply, message or f"Add {path} via jupyter-assets")

    def _remove(self, path: str) -> None:
        if self._git("ls-files", "--error-unmatch", "--", path).returncode == 0:
            self._check(self._git("rm", "-q", "--", path))

    def _write(self, apply: Callable[[], None], message: str) -> None:
        """Bring the clone to the remote tip, apply the change, commit and push; replay on a rejected push. On any
        failure the clone goes back to the last known remote state, so nothing unpushed is ever read or reused.
        Every failure to write (deletes included) is ``storage_provider_upsert_failed``."""
        with self._lock:
            self._ensure_repository()
            try:
                for attempt in range(1, self.push_attempts + 1):
                    self._sync()
                    apply()
                    if self._git("diff", "--cached", "--quiet").returncode == 0:
                        return  # the branch already holds exactly this
                    self._check(self._git("commit", "-q", "--no-verify", "-m", message))
                    if self._push():
                        return
                    log.info("push to %s was behind the remote; replaying (attempt %d)", self._safe_url(), attempt)
                raise ApiError(
                    "storage_provider_upsert_failed",
                    f"The branch '{self.ref}' of {self._safe_url()} kept moving; gave up after "
                    f"{self.push_attempts} attempts.",
                    400,
                )
            except BaseException:
                try:
                    self._reset_to_known_remote()
                except ApiError:
                    self._ready = False  # rebuilt from scratch at the next use
                raise

    def _push(self) -> bool:
        """True when pushed, False when the remote moved on (replay); raises when the remote refused or is gone."""
        result = self._git("push", "--porcelain", "origin", f"HEAD:refs/heads/{self.ref}", network=True)
        if result.returncode == 0:
            return True
        # Porcelain status line: "<flag>\t<from>:<to>\t<summary>"; no such line means the remote was never reached.
        statuses = [line.split("\t") for line in result.stdout.splitlines() if line.count("\t") == 2]
        if not statuses:
            raise self._unavailable(result)
        summary = statuses[0][2]
        if summary.startswith("[rejected]"):
            return False
        detail = self._scrub(f"{summary} {_last_lines(result.stderr)}".strip())
        log.warning("the remote %s refused a push to %s: %s", self._safe_url(), self.ref, detail)
        raise ApiError(
            "storage_provider_upsert_failed", f"The remote {self._safe_url()} refused the change: {detail}", 400
        )

    # -- the clone ------------------------------------------------------------------------------------------------

    def _ensure_repository(self) -> None:
        """A clone whose origin is the configured remote. A previous run may have died mid-write: its lock file
        and any unpushed work are dropped (this directory is ours alone)."""
        if self._ready:
            return
        if not (self.worktree / ".git" / "HEAD").is_file():
            shutil.rmtree(self.worktree, ignore_errors=True)
            self.worktree.mkdir(parents=True)
            self._check(self._git("init", "-q"))
            self._check(self._git("remote", "add", "--", "origin", self.remote_url))
        else:
            (self.worktree / ".git" / "index.lock").unlink(missing_ok=True)
            self._check(self._git("remote", "set-url", "--", "origin", self.remote_url))
        self._reset_to_known_remote()
        self._ready = True

    def _sync(self) -> None:
        """Fetch the branch and make the clone exactly the remote's tip (an empty tree when it has no such branch)."""
        result = self._git("fetch", "--no-tags", "--quiet", "origin", f"+{self._branch}:{self._tracking}", network=True)
        if result.returncode != 0:
            if "couldn't find remote ref" not in result.stderr:
                raise self._unavailable(result)
            self._git("update-ref", "-d", self._tracking)
        self._last_fetch = time.monotonic()
        self._reset_to_known_remote()

    def _reset_to_known_remote(self) -> None:
        self._check(self._git("symbolic-ref", "HEAD", self._branch))
        if self._git("rev-parse", "--verify", "--quiet", f"{self._tracking}^{{commit}}").returncode == 0:
            self._check(self._git("reset", "-q", "--hard", self._tracking))
        else:
            self._git("update-ref", "-d", self._branch)
            self._check(self._git("read-tree", "--empty"))
        self._check(self._git("clean", "-q", "-ffdx"))

    @property
    def _branch(self) -> str:
        return f"refs/heads/{self.ref}"

    @property
    def _tracking(self) -> str:
        return f"refs/remotes/origin/{self.ref}"

    # -- running git ----------------------------------------------------------------------------------------------

    def _git(self, *args: str, network: bool = False) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["git", *args],
                cwd=self.worktree,
                env=self._env,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=self.network_timeout if network else 60.0,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise ApiError(
                "storage_provider_unavailable", f"git {args[0]} against {self._safe_url()} timed out.", 400
            ) from error
        except FileNotFoundError as error:
            raise ApiError("storage_provider_unavailable", "git is not installed on the server.", 400) from error

    def _check(self, result: subprocess.CompletedProcess[str]) -> None:
        """A local git command must succeed; when it does not, the clone is in a state we cannot write from."""
        if result.returncode != 0:
            detail = self._scrub(_last_lines(result.stderr or result.stdout))
            log.error("git %s failed in %s: %s", result.args[1], self.worktree, detail)
            raise ApiError("storage_provider_upsert_failed", f"git {result.args[1]} failed: {detail}", 400)

    def _unavailable(self, result: subprocess.CompletedProcess[str]) -> ApiError:
        detail = self._scrub(_last_lines(result.stderr))
        log.warning("git %s could not reach %s: %s", result.args[1], self._safe_url(), detail)
        return ApiError(
            "storage_provider_unavailable", f"Could not reach the git remote {self._safe_url()}: {detail}", 400
        )

    def _git_environment(self, author_name: str, author_email: str) -> dict[str, str]:
        """No prompts (nobody would answer), C messages (parsed above), a fixed identity, and the token as an HTTP
        header given through GIT_CONFIG_* variables: never in argv, never in .git/config, never in the remote URL."""
        env = {key: value for key, value in os.environ.items() if key not in INHERITED_GIT_LOCATION}
        env.update(
            GIT_TERMINAL_PROMPT="0",
            GIT_SSH_COMMAND=env.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
            LC_ALL="C",
            LANGUAGE="C",
            GIT_AUTHOR_NAME=author_name,
            GIT_AUTHOR_EMAIL=author_email,
            GIT_COMMITTER_NAME=author_name,
            GIT_COMMITTER_EMAIL=author_email,
        )
        settings = [("commit.gpgsign", "false"), ("core.autocrlf", "false"), ("protocol.ext.allow", "never")]
        parts = urlsplit(self.remote_url)
        if self.token and parts.scheme in ("http", "https"):
            # Scoped to the remote's host: the header is not sent anywhere else (a redirect, a submodule).
            settings.append((f"http.{parts.scheme}://{parts.netloc}/.extraHeader", self._authorization()))
        env["GIT_CONFIG_COUNT"] = str(len(settings))
        for index, (key, value) in enumerate(settings):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env

    def _authorization(self) -> str:
        credential = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return f"Authorization: Basic {credential}"

    def _secret_forms(self) -> list[str]:
        if not self.token:
            return []
        return [self._authorization().split()[-1], self.token]

    def _scrub(self, text: str) -> str:
        """Text from git with the token (in every form we send it) and any URL credentials masked."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)

    def _safe_url(self) -> str:
        return self._scrub(self.remote_url)


# -- validation ---------------------------------------------------------------------------------------------------

_CONFIGURATION_KEYS = ("remoteUrl", "owner", "repo", "ref", "branch", "basePath", "rawBaseUrl", "visibilityPolicy")


def _configuration_invalid(message: str) -> ApiError:
    return ApiError("storage_provider_profile_configuration_invalid", message, 400)


def _optional_string(values: Mapping[str, object], key: str) -> str | None:
    """A trimmed string, or None when absent, null or blank; any other type is refused."""
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _configuration_invalid(f"'{key}' must be a string.")
    return value.strip() or None


def _remote_url(remote_url: str | None, owner: str | None, repo: str | None) -> str:
    """The given URL, else GitHub's URL of owner/repo (which are then required)."""
    if remote_url:
        remote_url = remote_url.strip()
        if re.search(r"[\s\x00-\x1f\x7f]", remote_url) or remote_url.startswith("-"):
            raise _configuration_invalid("'remoteUrl' is not a valid git URL.")
        # A password in the URL would be stored in .git/config and in the (non-secret) configuration.
        if "://" in remote_url and urlsplit(remote_url).password is not None:
            raise _configuration_invalid("'remoteUrl' must not hold credentials; put the token in the secrets.")
        return remote_url
    if not (owner and owner.strip()):
        raise ApiError("storage_provider_profile_github_owner_required", "owner is required without remoteUrl.", 400)
    if not (repo and repo.strip()):
        raise ApiError("storage_provider_profile_github_repo_required", "repo is required without remoteUrl.", 400)
    return f"https://github.com/{_owner(owner)}/{_repo(repo)}.git"


def _owner(owner: str | None) -> str | None:
    owner = owner.strip() if owner else None
    if owner and not NAME_PATTERN.match(owner):
        raise ApiError(
            "storage_provider_profile_github_owner_invalid", "owner may hold only letters, digits, '.', '_', '-'.", 400
        )
    return owner or None


def _repo(repo: str | None) -> str | None:
    repo = repo.strip() if repo else None
    if repo and not NAME_PATTERN.match(repo):
        raise ApiError(
            "storage_provider_profile_github_repo_invalid", "repo may hold only letters, digits, '.', '_', '-'.", 400
        )
    return repo or None


def _ref(ref: str) -> str:
    ref = ref.strip()
    if not ref:
        raise ApiError("storage_provider_profile_github_repo_ref_required", "ref (the branch) is required.", 400)
    if REF_FORBIDDEN.search(ref):
        raise ApiError("storage_provider_profile_github_repo_ref_invalid", f"'{ref}' is not a valid branch name.", 400)
    return ref


def normalize_base_path(base_path: str) -> str:
    """Trimmed, ``\\`` as ``/``, without outer slashes; ``.``/``..`` segments, ``//`` or a ``.git`` segment refused."""
    path = base_path.strip().replace("\\", "/").strip("/")
    segments = path.split("/")
    if path and ("//" in path or any(segment in (".", "..") or segment.lower() == ".git" for segment in segments)):
        raise ApiError(
            "storage_provider_profile_github_path_prefix_invalid", f"basePath '{base_path}' is not a clean path.", 400
        )
    return path


def _raw_base_url(raw_base_url: str) -> str:
    parts = urlsplit(raw_base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(
            "storage_provider_profile_github_repo_raw_base_url_invalid", "rawBaseUrl must be an http(s) URL.", 400
        )
    return raw_base_url.strip().rstrip("/")


def _visibility_policy(policy: str) -> str:
    policy = policy.strip().lower()
    if policy not in VISIBILITY_POLICIES:
        raise ApiError(
            "storage_provider_profile_github_visibility_policy_invalid",
            "visibilityPolicy must be 'public-only' or 'private-token'.",
            400,
        )
    return policy


def _token(token: str | None) -> str | None:
    token = token.strip() if token else None
    if token is not None and len(token) < 8:
        raise ApiError("storage_provider_profile_github_token_invalid", "The token must be at least 8 characters.", 400)
    return token


def _last_lines(text: str, count: int = 3) -> str:
    """The end of git's output, where its reason is; hints and blank lines dropped."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("hint:")]
    return " | ".join(lines[-count:])
