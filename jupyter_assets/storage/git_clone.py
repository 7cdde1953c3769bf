"""The local clone behind GitRepoStorage, driven by ``git`` itself: brought to the remote's tip, one file changed,
committed and pushed; a push rejected because someone else pushed first is replayed on the new tip (a rebase of a
one-file commit, which cannot conflict). The token goes to git in an HTTP header, and out of everything git says."""

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
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ApiError

log = logging.getLogger(__name__)

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


class GitClone:
    """A clone of branch ``ref`` of ``remote_url`` in ``worktree`` (a directory it alone uses). Its methods take
    repository paths; every change is a commit pushed to the remote before the method returns."""

    def __init__(
        self,
        *,
        remote_url: str,
        ref: str,
        worktree: Path,
        token: str | None,
        author_name: str,
        author_email: str,
        fetch_interval: float,
        push_attempts: int,
        network_timeout: float,
    ) -> None:
        self.remote_url = remote_url
        self.ref = ref
        self.token = token
        self.worktree = worktree
        self.fetch_interval = fetch_interval
        self.push_attempts = push_attempts
        self.network_timeout = network_timeout
        self._env = self._git_environment(author_name, author_email)
        self._secrets = self._secret_forms()
        self._lock = threading.Lock()
        self._ready = False
        self._last_fetch: float | None = None

    # -- reads ----------------------------------------------------------------------------------------------------

    def existing_file(self, path: str) -> Path:
        """The work-tree file at ``path``, else FileNotFoundError. A stored file changes only through this instance
        (a rewrite in place, whose commit updates the clone), so only a miss is worth a fetch (at most one every
        ``fetch_interval`` seconds): another writer of the same branch may have added it."""
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

    def _work_file(self, path: str) -> Path:
        """The work-tree file of a repository path. The remote's content could hold symlinks (pointing out of the
        work tree, or into .git): our files are never symlinks, and their directory must really be in the work tree."""
        candidate = self.worktree / path
        root = self.worktree.resolve()
        parent = candidate.parent.resolve()
        if candidate.is_symlink() or not parent.is_relative_to(root) or parent.is_relative_to(root / ".git"):
            raise ApiError("storage_provider_storage_key_invalid", f"Invalid repository path '{path}'.")
        return candidate

    # -- writes ---------------------------------------------------------------------------------------------------

    def commit_file(self, path: str, write: Callable[[Path], object], message: str | None = None) -> None:
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

    def remove_file(self, path: str, message: str | None = None) -> None:
        """Remove the file with a commit; a file the branch does not have makes no commit."""

        def apply() -> None:
            if self._git("ls-files", "--error-unmatch", "--", path).returncode == 0:
                self._check(self._git("rm", "-q", "--", path))

        self._write(apply, message or f"Delete {path} via jupyter-assets")

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
        raise ApiError("storage_provider_upsert_failed", f"The remote {self._safe_url()} refused the change: {detail}")

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
                "storage_provider_unavailable", f"git {args[0]} against {self._safe_url()} timed out."
            ) from error
        except FileNotFoundError as error:
            raise ApiError("storage_provider_unavailable", "git is not installed on the server.") from error

    def _check(self, result: subprocess.CompletedProcess[str]) -> None:
        """A local git command must succeed; when it does not, the clone is in a state we cannot write from."""
        if result.returncode != 0:
            detail = self._scrub(_last_lines(result.stderr or result.stdout))
            log.error("git %s failed in %s: %s", result.args[1], self.worktree, detail)
            raise ApiError("storage_provider_upsert_failed", f"git {result.args[1]} failed: {detail}")

    def _unavailable(self, result: subprocess.CompletedProcess[str]) -> ApiError:
        detail = self._scrub(_last_lines(result.stderr))
        log.warning("git %s could not reach %s: %s", result.args[1], self._safe_url(), detail)
        return ApiError("storage_provider_unavailable", f"Could not reach the git remote {self._safe_url()}: {detail}")

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


def _last_lines(text: str, count: int = 3) -> str:
    """The end of git's output, where its reason is; hints and blank lines dropped."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("hint:")]
    return " | ".join(lines[-count:])
