"""What a run's end finds in its workspace, as notes for the person: repositories and agent
configuration the run made, read-only files changed anyway, where links in read-only folders
lead, rebase plans left behind, tracked files changed that git would not show, and CI
configuration changed. Each part is looked at on its own: one that fails is named and the
others still report.
"""

from __future__ import annotations

from .ci_look import ci_config_notes
from .hidden import hidden_change_notes
from .nested import made_note
from .view import WorkspaceView
from .watch import (
    Budget,
    behind_links_notes,
    changed_behind_links,
    changed_read_only,
    left_todo_notes,
    one_part,
    read_only_notes,
)


def nested_repo_notes(view: WorkspaceView) -> list[str]:
    budget, failed, ws = Budget(), [], view.ws_fd >= 0
    new, unseen = one_part(failed, "the repositories and agent configuration made in it",
                           lambda: view.nested_repositories(budget), ([], []))
    # A read-only protected file changed anyway: through a second name the start could not
    # bind (watch.py), or from outside the sandbox.
    ro = one_part(failed, "its read-only files", lambda: changed_read_only(
        view.protection.binds, view.opened_at, set(new), budget) if ws else [], [])
    # Where links in read-only folders lead that the look at the start did not reach.
    behind = one_part(failed, "where links in its read-only folders lead", lambda: [
        rel for rel in changed_behind_links(view.ws_fd, view.protection.link_look.cut,
                                            view.opened_at, budget)
        if rel not in ro and rel not in new] if ws else [], [])
    todo = one_part(failed, "the rebase plans git runs", lambda: left_todo_notes(
        view.ws_fd, view.opened_at, view.git_folders(new)) if ws else [], [])
    # Tracked files changed while the index tells git not to look (review h152).
    hidden = one_part(failed, "tracked files git would not show as changed", lambda:
                      hidden_change_notes(view.ws_fd, view.opened_at, view.work_trees(new))
                      if ws else [], [])
    # CI configuration the run changed: it runs with secrets where the repository is pushed.
    ci = one_part(failed, "the CI configuration in it", lambda: ci_config_notes(
        view.ws_fd, view.opened_at, view.work_trees(new), view.ci_at_start) if ws else [], [])
    return [(f"{rel} was changed during the run through another name (a hard link) in the "
             "workspace: read it before a tool on the host does") if rel in
            view.protection.aliased else made_note(rel) for rel in new] + unseen + (
            read_only_notes(ro, budget) if ro or budget.cut else []) + behind_links_notes(
            behind) + todo + hidden + ci + failed
