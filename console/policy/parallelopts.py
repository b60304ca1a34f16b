"""GNU parallel's options as its Getopt::Long reads them (runnerstarts.py): which ones surely
take no value, so that the word after one is a word of its own (`parallel -k echo ::: dd` runs
echo: read as -k's value, `dd` became the command and the line was refused: review h165).

The table is parallel 20221122's options_hash (`/usr/bin/parallel`), as Getopt::Long specs:
`=s`, `=i`, `=f` take the next word when none is attached; `:s`, `:f` may take it (`parallel -i
echo {} ::: a` runs `{}`, `-e echo ::: w` runs w). Parsed with bundling and require_order: a
single dash starts letters given together (`-kj2`), case counts; a long option is matched in any
case and by any prefix naming one option only. An option not in the table, or a prefix naming
several, stops parallel with its usage: its next word is kept as a possible value.
"""

from __future__ import annotations

import re

_SPECS = """
B=s E=s H=i I=s L=s U=s W=s _parset=s _test=s arg-file-sep|argfilesep=s arg-file|argfile|a=s
arg-sep|argsep=s basefile|bf=s basenameextensionreplace|bner=s basenamereplace|bnr=s bin=s
block-size|blocksize|block=s block-timeout|blocktimeout|bt=s col-sep|colsep|C=s
ctag-string|ctagstring=s debug|D=s delay=s delimiter|d=s dirnamereplace|dnr=s env=s eof|e:s
extensionreplace|er=s filter=s group-by|groupby=s halt-on-error|haltonerror|halt=s header=s
joblog|jl=s jobs|j=s limit=s linkinputsource|xapplyinputsource=i load=s max-args|maxargs|n=s
max-chars|maxchars|s=s max-lines|maxlines|l:f max-procs|maxprocs|P=s
max-replace-args|maxreplaceargs|N=s memfree=s memsuspend=s min-version|minversion=i nice=i
parens=s process-slot-var|processslotvar=s profile|J=s recend=s recstart=s replace|i:s
results|result|res=s retries=s return=s rpl=s rsync-opts|rsyncopts=s
semaphore-name|semaphorename|id=s semaphore-timeout|semaphoretimeout|st=s seqreplace=s shard=s
shell-completion|shellcompletion=s slotreplace=s sql-and-worker|sqlandworker=s
sql-master|sqlmaster=s sql-worker|sqlworker=s sql=s ssh-delay|sshdelay=f ssh=s
sshloginfile|slf=s sshlogin|S=s tag-string|tagstring=s template|tmpl=s term-seq|termseq=s
timeout=s tmpdir|tempdir=s total-jobs|totaljobs|total=s
transfer-file|transferfile|transfer-files|transferfiles|tf=s trc=s trim=s
use-compress-program|compress-program|usecompressprogram|compressprogram=s
use-decompress-program|decompress-program|usedecompressprogram|decompressprogram=s
work-dir|workdir|wd=s
T X Y _pipe-means-argfiles bar bg bug cat cleanup
color-failed|colour-failed|colorfailed|colourfailed|color-fail|colour-fail|colorfail|colourfail|cf
color|colour compress controlmaster|M csv ctag ctrl-c|ctrlc dry-run|dryrun|dr embed eta
exit|x fg fifo filter-hosts|filterhosts|filter-host g gnu group help|h
hgrp|hostgrp|hostgroup|hostgroups interactive|p keep-order|keeporder|k
latest-line|latestline|ll line-buffer|line-buffered|linebuffer|linebuffered|lb link|xapply m
max-line-length-allowed|maxlinelengthallowed no-ctrl-c|no-ctrlc|noctrlc
no-keep-order|nokeeporder|nok|no-k no-run-if-empty|norunifempty|r nonall noswap null|0
number-of-cores|numberofcores number-of-cpus|numberofcpus number-of-sockets|numberofsockets
number-of-threads|numberofthreads onall open-tty|o output-as-files|outputasfiles|files
pipe-part|pipepart pipe|spreadstdin plain plus progress quote|q recordenv|record-env
regexp|regex remove-rec-sep|removerecsep|rrs resume resume-failed|resumefailed
retry-failed|retryfailed round-robin|roundrobin|round semaphore session shebang|hashbang
shell-quote|shellquote|shell_quote show-limits|showlimits shuf silent
skip-first-line|skipfirstline tag tee tmux tmux-pane|tmuxpane tollef transfer tty ungroup|u
use-cores-instead-of-threads|usecoresinsteadofthreads
use-cpus-instead-of-cores|usecpusinsteadofcores
use-sockets-instead-of-threads|usesocketsinsteadofthreads v verbose|t version|V wait
will-cite|willcite|nn|nonotice|no-notice xargs
"""

FLAG, VALUE, MAYBE = "flag", "value", "maybe"  # takes no value, takes one, may take one


def _table() -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    """Long names (lower case), and letters, to (the option's names, its kind)."""
    longs: dict[str, tuple[str, str]] = {}
    letters: dict[str, tuple[str, str]] = {}
    for spec in _SPECS.split():
        names, kind = spec, FLAG
        for mark, found in (("=", VALUE), (":", MAYBE)):
            if mark in spec:
                names, kind = spec.split(mark, 1)[0], found
        for name in names.split("|"):
            if len(name) == 1:
                letters[name] = (names, kind)
            else:
                longs[name.lower()] = (names, kind)
    return longs, letters


_LONGS, _LETTERS = _table()


def _long(name: str) -> tuple[str, str] | None:
    """A long option's (names, kind), by its name or a prefix naming one option only."""
    name = name.lower()
    if name in _LONGS:
        return _LONGS[name]
    hits = {_LONGS[n] for n in _LONGS if n.startswith(name)} if name else set()
    return next(iter(hits)) if len(hits) == 1 else None


def takes_no_value(word: str) -> bool:
    """Whether the word after the option word `word` is surely not its value."""
    if word.startswith("--"):
        name, eq, _ = word[2:].partition("=")
        option = _long(name)
        return option is not None and (option[1] == FLAG or bool(eq))
    for at, letter in enumerate(word[1:], start=2):
        kind = _LETTERS.get(letter, ("", None))[1]
        if kind is None:
            return False  # not an option of parallel's: it stops, nothing is known
        if kind != FLAG:  # its value is the rest of the word, if any (-l's only if a number)
            return at < len(word) and (kind == VALUE or letter != "l")
    return len(word) > 1


def _valued(word: str) -> tuple[str, str, str | None] | None:
    """The option of an option word that may take a value: (its names, its kind, the value the
    word holds, None for none); None for flags alone or an option parallel does not know."""
    if word.startswith("--"):
        name, eq, value = word[2:].partition("=")
        option = _long(name)
        return (*option, value if eq else None) if option and option[1] != FLAG else None
    for at, letter in enumerate(word[1:], start=2):
        names, kind = _LETTERS.get(letter, ("", None))
        if kind is None:
            return None
        if kind != FLAG:
            return names, kind, word[at:] or None
    return None


def option_name(word: str) -> tuple[str | None, str | None]:
    """The names of the option an option word gives that may take a value (`replace|i` for -i,
    --rep, --REPLACE=X), and the value it holds in the same word (None for none); (None, None)
    for flags alone or an option parallel does not know (paralleljobs.py)."""
    option = _valued(word)
    return (option[0], option[2]) if option else (None, None)


def takes_next(word: str, following: str) -> bool:
    """Whether the option word `word` surely takes `following`, the word after it, as its value
    (`-I XX`, `--rpl 'XX ...'`; -i and -e one that is no option, -l a number), paralleljobs.py."""
    option = _valued(word)
    if option is None or option[2] is not None:
        return False
    names, kind, _ = option
    if kind == VALUE:
        return True
    if names.endswith("|l"):  # -l's value is a number (`:f`), or none
        return bool(re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)", following))
    return following[:1] != "-"
