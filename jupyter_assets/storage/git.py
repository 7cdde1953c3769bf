"""Files in a git repository (provider type ``github-repo``): the Storage protocol over a local clone (see
git_clone), and the validation of the provider's configuration."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

from ..errors import ApiError
from . import check_key
from .git_clone import GitClone
from .local import read_range

DEFAULT_RAW_BASE_URL = "https://raw.githubusercontent.com"
VISIBILITY_POLICIES = ("public-only", "private-token")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
# What git itself refuses in a branch name (git check-ref-format), plus a leading '-' so a ref is never an option.
REF_FORBIDDEN = re.compile(r"[\s\\~^:?*\[\x00-\x1f\x7f]|\.\.|@\{|//|^[-/.]|/\.|[/.]$|\.lock$|^@$")


class GitRepoStorage:
    """Files at ``<basePath>/<storageKey>`` on branch ``ref`` of a git remote."""

    name = "github-repo"

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
            )
        self.clone = GitClone(
            remote_url=self.remote_url,
            ref=self.ref,
            worktree=cache_dir,
            token=self.token,
            author_name=author_name,
            author_email=author_email,
            fetch_interval=fetch_interval,
            push_attempts=push_attempts,
            network_timeout=network_timeout,
        )

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
        self.clone.commit_file(
            self.repository_path(key), lambda destination: shutil.copyfile(source, destination), message
        )
        source.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.clone.commit_file(self.repository_path(key), lambda destination: destination.write_bytes(data))

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
        self.clone.remove_file(self.repository_path(key), message)

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
            raise ApiError("storage_provider_storage_key_invalid", f"Invalid storage key '{key}'.")
        return f"{self.base_path}/{key}" if self.base_path else key

    @property
    def worktree(self) -> Path:
        """The directory of the local clone."""
        return self.clone.worktree

    def _readable(self, key: str) -> Path:
        return self.clone.existing_file(self.repository_path(key))


# -- validation ---------------------------------------------------------------------------------------------------

_CONFIGURATION_KEYS = ("remoteUrl", "owner", "repo", "ref", "branch", "basePath", "rawBaseUrl", "visibilityPolicy")


def _configuration_invalid(message: str) -> ApiError:
    return ApiError("storage_provider_profile_configuration_invalid", message)


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
        raise ApiError("storage_provider_profile_github_owner_required", "owner is required without remoteUrl.")
    if not (repo and repo.strip()):
        raise ApiError("storage_provider_profile_github_repo_required", "repo is required without remoteUrl.")
    return f"https://github.com/{_owner(owner)}/{_repo(repo)}.git"


def _owner(owner: str | None) -> str | None:
    owner = owner.strip() if owner else None
    if owner and not NAME_PATTERN.match(owner):
        raise ApiError(
            "storage_provider_profile_github_owner_invalid", "owner may hold only letters, digits, '.', '_', '-'."
        )
    return owner or None


def _repo(repo: str | None) -> str | None:
    repo = repo.strip() if repo else None
    if repo and not NAME_PATTERN.match(repo):
        raise ApiError(
            "storage_provider_profile_github_repo_invalid", "repo may hold only letters, digits, '.', '_', '-'."
        )
    return repo or None


def _ref(ref: str) -> str:
    ref = ref.strip()
    if not ref:
        raise ApiError("storage_provider_profile_github_repo_ref_required", "ref (the branch) is required.")
    if REF_FORBIDDEN.search(ref):
        raise ApiError("storage_provider_profile_github_repo_ref_invalid", f"'{ref}' is not a valid branch name.")
    return ref


def normalize_base_path(base_path: str) -> str:
    """Trimmed, ``\\`` as ``/``, without outer slashes; ``.``/``..`` segments, ``//`` or a ``.git`` segment refused."""
    path = base_path.strip().replace("\\", "/").strip("/")
    segments = path.split("/")
    if path and ("//" in path or any(segment in (".", "..") or segment.lower() == ".git" for segment in segments)):
        raise ApiError(
            "storage_provider_profile_github_path_prefix_invalid", f"basePath '{base_path}' is not a clean path."
        )
    return path


def _raw_base_url(raw_base_url: str) -> str:
    parts = urlsplit(raw_base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(
            "storage_provider_profile_github_repo_raw_base_url_invalid", "rawBaseUrl must be an http(s) URL."
        )
    return raw_base_url.strip().rstrip("/")


def _visibility_policy(policy: str) -> str:
    policy = policy.strip().lower()
    if policy not in VISIBILITY_POLICIES:
        raise ApiError(
            "storage_provider_profile_github_visibility_policy_invalid",
            "visibilityPolicy must be 'public-only' or 'private-token'.",
        )
    return policy


def _token(token: str | None) -> str | None:
    token = token.strip() if token else None
    if token is not None and len(token) < 8:
        raise ApiError("storage_provider_profile_github_token_invalid", "The token must be at least 8 characters.")
    return token
