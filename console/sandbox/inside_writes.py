"""What a tool call that writes files is asked as, in a sandbox: each file it writes, named where
the kernel lands it, links followed as they stand when it asks. Standard library only, Python
3.8+. It lies beside inside.py in the sandbox's read-only bin folder, and inside.py loads it for
tools other than Bash alone (a shell command never reads it).

Claude Code's file tools write one file (Write, Edit, MultiEdit, NotebookEdit); Codex's
apply_patch writes every file its patch names (Add File, Update File, Delete File, Move to).
Each file is one request, "Write PATH", "Edit PATH" or "Delete PATH", so a person's grant for a
folder (`Write /workspace/src/*`) covers what lands in that folder and nothing else.
"""

from __future__ import annotations

import posix
import time

FILE_TOOLS = {"Write": "file_path", "Edit": "file_path", "MultiEdit": "file_path", "NotebookEdit": "notebook_path"}
WRITING_TOOLS = frozenset([*FILE_TOOLS, "apply_patch"])  # their requests are the files: no title of the agent's
# What Rust's trim() takes off (char::is_whitespace): Python's strip() takes these and U+001C-U+001F.
RUST_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
             "\u2028\u2029\u202f\u205f\u3000"
PATCH_FILES_MAX = 50  # files one apply_patch may name: a request each, asked in turn
# A path the hook walks: the kernel's PATH_MAX for what is given, and a bound on the names it looks
# up, links' included (a..×500,000 after a folder 2,000 deep took the hook minutes: helper 98).
PATH_BYTES_MAX, NAMES_MAX = 4096, 4096
# apply_patch's file headers, lower case: Codex takes a line for one once trimmed (codex-rs/apply-patch's parser).
PATCH_HEADERS = (("*** add file: ", "Write"), ("*** update file: ", "Edit"), ("*** delete file: ", "Delete"),
                 ("*** move to: ", "Write"))


class Refused(Exception):
    """A write refused without asking anyone: str() says why and what to do instead."""


def subjects(tool: str, tool_input: dict, cwd: str | None, deadline: float | None = None) -> list | None:
    """The requests a call of a writing tool is asked as, one per file in the order it names them;
    None for a call that names no file to write (a tool that writes none: asked by its input).
    Past `deadline` (time.monotonic) before every file is named, the call is refused."""
    if tool == "apply_patch":
        patch = tool_input.get("command")  # Codex 0.171 sends the patch text alone, so
        if not isinstance(patch, str) or set(tool_input) != {"command"}:  # a field it adds (a workdir) is not guessed at
            raise Refused(f"an apply_patch call with fields {str(sorted(tool_input))[:200]} (the patch text, `command`, alone is read), "
                          "so it is refused")
        files = patch_files(patch)
        if not 0 < len(files) <= PATCH_FILES_MAX:  # each file is a request of its own
            raise Refused(f"an apply_patch that names {len(files)} files, so it is refused: "
                          f"write 1 to {PATCH_FILES_MAX} files a patch (`*** Add File: PATH` and the like)")
        named = []
        for verb, path in files:
            if deadline is not None and time.monotonic() > deadline:
                raise Refused("naming the patch's files took too long, so it is refused: write fewer, plainer paths")
            named.append(f"{verb} {written_path(path, cwd, verb != 'Delete', whole=True)}")
        return named
    path = tool_input.get(FILE_TOOLS.get(tool, ""))
    # Whole, from /: a relative path's grant covered the same name in another folder (s31)
    return [f"{tool} {written_path(path, cwd, whole=True)}"] if isinstance(path, str) and path else None


def patch_files(patch: str) -> list:
    """(verb, path) for each line of a patch that reads as a file header once trimmed, in any case: every header
    Codex's parser takes, and more (a header-like line of context), so no file it writes goes unasked."""
    found = []
    for line in patch.split("\n"):  # Rust's lines(): "\n" ends a line, and a "\r" before it goes
        bare = line.strip()  # Python's whitespace holds all of Rust's trim(), and U+001C-U+001F
        for header, verb in PATCH_HEADERS:
            if bare[:len(header)].lower() == header:
                if line.strip(RUST_SPACE) != bare:  # the oracle test found Codex writes `f\x1c`
                    raise Refused(f"the patch has a file header with control characters around it ({bare[:200]!r}), "
                                  "so it is refused: write it plainly")
                path = bare[len(header):]
                if not path or path != path.strip() or any(c < " " or c == "\x7f" for c in path):
                    raise Refused(f"the patch names a file {path[:200]!r} with a space at an end or a control character, "
                                  "so it is refused: name it plainly")
                if path.endswith("/"):  # Codex writes the file `build` for `build/` (review s30)
                    raise Refused(f"the patch names {path[:200]!r}, a folder, so it is refused: name the file")
                if verb == "Write" and header.startswith("*** move") and found and found[-1][0] == "Edit":
                    found[-1] = ("Delete", found[-1][1])  # moved: the file (or link) is removed, not written
                found.append((verb, path))
    return found


def written_path(path: str, cwd: str | None, follow_last: bool = True, whole: bool = False) -> str:
    """A path to write as asked: as given (whole: from /), or where links make it land first, as they stand now
    (review s28). follow_last=False: the last name itself, not where a link there leads (a file removed)."""
    if len(path.encode("utf-8", "surrogatepass")) > PATH_BYTES_MAX:
        raise Refused(f"{path[:80]}... is longer than {PATH_BYTES_MAX} bytes, so it is refused: name the file plainly")
    if path.startswith("~"):  # Codex reads it as HOME (and Claude Code may): named plainly, nothing is guessed
        raise Refused(f"{path} starts with ~, so it is refused: give the whole path")
    base = "" if path.startswith("/") else (cwd or _cwd())
    if base is None:
        raise Refused(f"{path} is relative to a folder that is gone, so it is refused: give the whole path")
    full = f"{base}/{path}" if base else path
    if not follow_last:
        head, _, name = full.rstrip("/").rpartition("/")
        if name in ("", ".", ".."):
            raise Refused(f"{path} names no file, so it is refused")
        where, links = _follow(head or "/")
        lands = f"{where.rstrip('/')}/{name}"
    else:
        lands, links = _follow(full)
    return (full if whole else path) if not links else f"{lands} (asked as {path}: a link leads there)"


def _follow(full: str) -> tuple:
    """(where the kernel writes, links followed), one name at a time as the kernel walks; what it cannot follow so
    is refused (a name too long to look up, /proc/self/cwd: another thing to another process; a hard link: s28).
    A `..` of the path itself after a link is refused too: Claude Code and Codex take it out of the words first."""
    done, todo, links = [], [(p, True) for p in full.split("/") if p not in ("", ".")], 0
    looked = 0
    while todo:
        name, given = todo.pop(0)
        if (looked := looked + 1) > NAMES_MAX:
            raise Refused(f"{full[:80]}... has more than {NAMES_MAX} names to follow, so it is refused: name the file plainly")
        if done[:1] == ["proc"] or (not done and name == "proc") or links > 40:
            raise Refused(f"{full} goes through /proc or too many links, so it is refused: name the file itself")
        if name == "..":
            if given and links:
                raise Refused(f"{full} has a .. after a link, so it is refused: name the file without ..")
            done = done[:-1]
            continue
        try:
            st = posix.lstat("/".join(["", *done, name]))
        except (OSError, ValueError) as exc:  # not there yet (made as asked), or a NUL in it (never written)
            if isinstance(exc, UnicodeError) or getattr(exc, "errno", 2) not in (2, 20):  # ENOENT, ENOTDIR
                raise Refused(f"{full} cannot be checked ({exc}), so it is refused") from None
            st = None
        if st is None or st.st_mode & 0o170000 != 0o120000:  # not a link
            if st is not None and not todo and st.st_nlink > 1 and st.st_mode & 0o170000 == 0o100000:
                raise Refused(f"{full} has another name (a hard link), so it is refused: remove it, write it anew")
            done.append(name)
            continue
        links += 1
        target = posix.readlink("/".join(["", *done, name]))
        todo[:0] = [(p, False) for p in target.split("/") if p not in ("", ".")]
        done = [] if target.startswith("/") else done
    return "/" + "/".join(done), links


def _cwd() -> str | None:
    try:
        return posix.getcwd()
    except OSError:
        return None
