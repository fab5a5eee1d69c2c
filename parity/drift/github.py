"""Filing diffs as GitHub issues through the REST API (stdlib HTTP; token from ``GITHUB_TOKEN``).

One issue per new diff; before creating, the open issues with the ``mbv2-parity`` label are read: a diff whose
fingerprint already appears in an open issue (body or comments) is not filed again; a diff for a card that an open
issue already tracks becomes a comment on that issue. API base ``MBV2_PARITY_GITHUB_API`` (default
https://api.github.com), repo ``MBV2_PARITY_GITHUB_REPO`` or ``--repo``.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .. import settings
from ..errors import EXIT_FAILED, ParityError
from .watch import Diff, diff_markdown

LABEL = "mbv2-parity"


class GitHubError(ParityError):
    """The GitHub API refused or did not answer."""

    exit_code = EXIT_FAILED


@dataclass
class Filed:
    fingerprint: str
    card: str
    action: str          # created | commented | already-filed | dry-run | error
    issue: int | None
    detail: str = ""


class GitHub:
    def __init__(self, repo: str, token: str | None = None, api: str | None = None):
        if not repo or "/" not in repo:
            raise GitHubError(f"repository {repo!r} is not OWNER/NAME (set MBV2_PARITY_GITHUB_REPO or --repo)")
        self.repo, self.token = repo, token or settings.github_token()
        self.api = (api or settings.github_api()).rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(f"{self.api}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("Accept", "application/vnd.github+json")
        req.add_header("X-GitHub-Api-Version", "2022-11-28")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=settings.github_timeout()) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise GitHubError(f"GitHub API {method} {path}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise GitHubError(f"GitHub API {method} {path}: {type(reason).__name__}: {reason}") from None

    def open_issues(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self._call("GET", f"/repos/{self.repo}/issues?state=open&labels={LABEL}&per_page=100&page={page}")
            out += batch
            if len(batch) < 100:
                return out
            page += 1

    def comments(self, number: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/repos/{self.repo}/issues/{number}/comments?per_page=100"))

    def create(self, title: str, body: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/repos/{self.repo}/issues", {"title": title, "body": body, "labels": [LABEL]}))

    def comment(self, number: int, body: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/repos/{self.repo}/issues/{number}/comments", {"body": body}))


def title_for(d: Diff) -> str:
    return f"[mbv2-parity] {d.card}: {d.kind} changed upstream"


def marker(d: Diff) -> str:
    return f"mbv2-parity:{d.fingerprint}"


def file_diffs(diffs: list[Diff], gh: GitHub | None) -> list[Filed]:
    """Dry run when ``gh`` is None (prints nothing itself: returns what would be filed)."""
    if gh is None:
        return [Filed(d.fingerprint, d.card, "dry-run", None, title_for(d)) for d in diffs]
    issues = gh.open_issues()          # raises GitHubError: the caller records it, nothing is lost
    out = []
    for d in diffs:
        try:
            seen = next((i for i in issues if marker(d) in (i.get("body") or "")), None)
            if seen is None:
                for i in issues:
                    if any(marker(d) in (c.get("body") or "") for c in gh.comments(i["number"])):
                        seen = i
                        break
            if seen is not None:
                out.append(Filed(d.fingerprint, d.card, "already-filed", seen["number"]))
                continue
            tracking = next((i for i in issues if f"] {d.card}:" in (i.get("title") or "")), None)
            body = diff_markdown(d)
            if tracking is not None:
                gh.comment(tracking["number"], body)
                out.append(Filed(d.fingerprint, d.card, "commented", tracking["number"]))
            else:
                new = gh.create(title_for(d), body)
                issues.append(new)
                out.append(Filed(d.fingerprint, d.card, "created", new.get("number")))
        except GitHubError as e:
            out.append(Filed(d.fingerprint, d.card, "error", None, str(e)))
    return out
