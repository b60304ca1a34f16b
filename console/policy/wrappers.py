"""Programs that run a command given in their words (`sudo -u root CMD`, `timeout 5 CMD`): the
wrappers unwrap.py steps through, with the options of each that take a separate value, so that
`sudo -u root rm` runs rm, not "root". Data only.
"""

from __future__ import annotations

# Programs that run the command named after their own options, and those of their options that
# take a separate argument (so `sudo -u root rm` runs rm, not "root").
WRAPPER_ARGS: dict[str, set[str]] = {
    "env": {"-u", "--unset", "-C", "--chdir", "-a", "--argv0"},  # -a: coreutils 9.8
    "command": set(), "builtin": set(), "exec": {"-a"}, "nohup": set(), "setsid": set(),
    "jobs": set(),  # `jobs -x CMD ARGS` runs CMD
    "nice": {"-n", "--adjustment"},
    "time": {"-f", "-o", "--format", "--output"},
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "-R", "--user", "--group",
             "--close-from", "--chdir", "--host", "--prompt", "--role", "--type", "--other-user",
             "--command-timeout", "--chroot"},
    "doas": {"-u", "-C"},
    "stdbuf": {"-i", "-o", "-e", "--input", "--output", "--error"},
    "ionice": {"-c", "-n", "-p", "-P", "-u", "--class", "--classdata", "--pid", "--pgid", "--uid"},
    "xargs": {"-I", "-n", "-P", "-d", "-E", "-L", "-s", "-a", "--arg-file", "--delimiter",
              "--max-args", "--max-procs", "--max-lines", "--max-chars", "--eof",
              "--process-slot-var"},
    "timeout": {"-s", "--signal", "-k", "--kill-after"},
    # strace's long options that take a value (strace 6): `--columns 40` hid the command.
    "strace": {"-o", "-e", "-p", "-s", "-u", "-P", "-a", "-b", "-E", "-I", "-O", "-S", "-X",
               "-U", "--output", "--expr", "--attach", "--string-limit", "--user",
               "--trace-path", "--env", "--columns", "--detach-on", "--interruptible",
               "--summary-sort-by", "--summary-columns", "--const-print-style", "--trace",
               "--abbrev", "--verbose", "--raw", "--read", "--write", "--signal", "--status",
               "--inject", "--fault", "--trace-fds", "--argv0", "--kvm", "--decode-pids",
               "--summary-syscall-overhead"},
    "chrt": {"-T", "-P", "-D", "--sched-runtime", "--sched-period", "--sched-deadline"},
    "taskset": set(), "unbuffer": set(), "busybox": set(), "toybox": set(),
    # A multicall coreutils: `coreutils NAME ARGS` (uutils), or GNU's
    # `--coreutils-prog=NAME ARGS` (unwrap.py reads the name out of that option).
    "coreutils": set(),
    "fakeroot": {"-l", "--lib", "--faked", "-s", "-i", "-b", "--fd-base"},
    "dbus-run-session": {"--config-file", "--dbus-daemon"},
    "flock": {"-w", "--wait", "--timeout", "-E", "--conflict-exit-code"},  # --wait: s31
    # -d/--differences take a value only attached (`-d=permanent`): OPTIONAL_ATTACHED.
    "watch": {"-n", "--interval", "-q", "--equexit"},
    "chroot": {"--userspec", "--groups"},
    "runuser": {"-u", "-g", "-G", "-w", "--user", "--group", "--supp-group",
                "--whitelist-environment"},
    "unshare": {"-S", "-G", "-R", "-w", "--setuid", "--setgid", "--root", "--wd", "--map-user",
                "--map-group", "--map-users", "--map-groups", "--propagation", "--setgroups",
                "--monotonic", "--boottime"},
    "setpriv": {"--reuid", "--regid", "--ruid", "--euid", "--rgid", "--egid", "--groups",
                "--inh-caps", "--ambient-caps", "--bounding-set", "--securebits", "--pdeathsig",
                "--selinux-label", "--apparmor-profile", "--landlock-access", "--landlock-rule",
                "--seccomp-filter"},
    "prlimit": {"-p", "--pid", "-o", "--output"},  # the limits themselves take =VALUE only
    "nsenter": {"-t", "--target", "-S", "--setuid", "-G", "--setgid", "-W", "--wdns", "-N",
                "--net-socket"},
    # setarch, and the names it answers to as a link (`x86_64 CMD` is `setarch x86_64 CMD`)
    "setarch": set(), "linux32": set(), "linux64": set(), "x86_64": set(), "i386": set(),
    "i686": set(), "uname26": set(),
    "runcon": {"-u", "-r", "-t", "-l", "--user", "--role", "--type", "--range"},
    "numactl": {"-N", "-m", "-C", "-i", "-p", "-P", "-w", "--cpunodebind", "--membind",
                "--physcpubind", "--interleave", "--preferred", "--preferred-many",
                "--weighted-interleave"},
    # Tools that run their command as it is (checked: ssh-agent, valgrind; the rest as their
    # manuals say), with the options that take a separate value.
    "ssh-agent": {"-a", "-E", "-P", "-t", "-O"},
    "valgrind": set(),  # its options are --name=value
    "systemd-run": {"-u", "--unit", "-p", "--property", "--description", "--slice", "-H",
                    "--host", "-M", "--machine", "-E", "--setenv", "--uid", "--gid", "--nice",
                    "--working-directory", "-D", "--on-active", "--on-boot", "--on-calendar",
                    "--on-startup", "--on-unit-active", "--on-unit-inactive",  # review h154
                    "--timer-property", "--path-property", "--socket-property", "--service-type",
                    "--json"},
    "run0": {"-u", "--user", "-g", "--group", "--nice", "-D", "--chdir", "--setenv",
             "--unit", "--property", "--description", "--slice", "--machine",
             "--background", "--pty"},
    "pkexec": {"--user", "-u"},
    "eatmydata": set(), "catchsegv": set(), "chronic": set(), "ifne": set(),
    "ltrace": {"-o", "-e", "-p", "-s", "-u", "-a", "-A", "-D", "-F", "-l", "-n", "-w", "-x",
               "--output", "--library", "--config"},
    "torsocks": {"-u", "-p", "-a", "-P", "--user", "--pass", "--address", "--port"},
    "proxychains": {"-f"}, "proxychains4": {"-f"},
    "cgexec": {"-g"},
    "firejail": set(),  # its options are --name=value
    "xvfb-run": {"-n", "-s", "-e", "-f", "-p", "-w", "--server-num", "--server-args",
                 "--error-file", "--auth-file", "--xauth-protocol", "--wait"},
    "faketime": {"-p", "--date-prog"},
    # npx runs a package's program, or one on PATH (`npx touch MARK` runs touch); -c/--call
    # give it a shell command (unwrap reads that as a nested command).
    "npx": {"-p", "--package", "-c", "--call", "-w", "--workspace", "--prefix", "--cache",
            "--registry", "--userconfig"},
    # Run a program as given: as another user (chpst), with a password fed (sshpass), with
    # line editing (rlwrap), queued (GNU parallel's sem), in a detached terminal (screen).
    "chpst": {"-u", "-U", "-b", "-e", "-/", "-C", "-n", "-l", "-L", "-m", "-d", "-o", "-p", "-f",
              "-c", "-r", "-t"},
    "sshpass": {"-p", "-f", "-d", "-P"},
    "rlwrap": {"-b", "-C", "-D", "-f", "-F", "-g", "-H", "-l", "-O", "-P", "-q", "-s", "-S", "-t",
               "-w", "-z", "-e", "-M", "-m"},
    "sem": {"-j", "--jobs", "--id", "--semaphorename", "--st", "--semaphoretimeout"},
    "screen": {"-c", "-e", "-h", "-p", "-S", "-s", "-T", "-t"},
    # Package runners named as one word: `bunx CMD`, `uvx CMD` (uv tool run), `pnpx CMD`.
    "bunx": {"-p", "--package"},
    "pnpx": {"--package", "--allow-build"},
}
# Programs that run a command given in their words, whose options are not vetted here (or
# that run more than that command: gdb's -ex, perf's --pre, hyperfine's --setup). Their
# command is read as a nested one, every way it may start (runners.nested_readings), so forbid
# and ask rules see it while the program itself is never allowed through it: `gosu root rm
# -rf /` was asked, not refused (review s38). Launchers, privilege droppers, init shims,
# profilers, debuggers, compiler caches, secret injectors, HPC and GPU launchers.
NESTED_RUNNERS = frozenset({
    "gosu", "su-exec", "setuidgid", "s6-setuidgid", "envuidgid", "envdir", "setlock",
    "softlimit", "with-contenv", "tini", "tini-static", "dumb-init", "cpulimit", "trickle",
    "nocache", "ccache", "sccache", "distcc", "icecc", "perf", "gdb", "cuda-gdb", "lldb",
    "heaptrack", "memusage", "hyperfine", "watchexec", "entr", "parallel", "tsp", "nq",
    "aws-vault", "doppler", "dotenv", "dotenvx", "cross-env", "env-cmd", "infisical", "chamber",
    "bwrap", "proot", "fakechroot", "flatpak-spawn", "mpirun", "mpiexec", "srun", "nsys",
    "ncu", "nvprof", "compute-sanitizer",
    # review h155: more that run a command, or a line (entr -s, nix-shell --run)
    "bundle", "rr", "systemd-inhibit", "caffeinate", "retry", "nix-shell", "nix",
})
# Of those, the ones that hand their command words to a shell as one line (`watchexec -- 'rm
# -rf /'` runs rm), or each word as a line of its own (hyperfine, parallel's arguments).
NESTED_SHELL_JOINS = frozenset({"watchexec", "parallel", "tsp", "hyperfine"})
NESTED_WORD_LINES = frozenset({"hyperfine"})
# Of those, the ones that hand their command words to a shell as one line given a flag (env-cmd's
# `--use-shell`, by its README: `env-cmd --use-shell 'rm -rf ~'` runs rm: review h165).
NESTED_SHELL_FLAGS = {"env-cmd": "--use-shell"}
# A debugger's options whose value runs its own commands (`-ex 'shell rm -rf /'`, `-o
# 'platform shell ...'`), and a profiler's whose value is a shell line (`perf stat --pre`):
# what they run is not read, so the line is never allowed by a rule below them.
NESTED_SCRIPTS = {
    "gdb": ("-ex", "--ex", "-eval-command", "--eval-command", "-iex", "--iex",
            "-init-eval-command", "--init-eval-command", "-x", "--x", "-command", "--command",
            "-ix", "--ix", "-init-command", "--init-command"),
    "lldb": ("-o", "--one-line", "-O", "--one-line-before-file", "-k", "--one-line-on-crash",
             "-s", "--source", "-S", "--source-before-file", "-K", "--source-on-crash"),
    "perf": ("--pre", "--post"),
    "entr": ("-s",), "nix-shell": ("--run", "--command"), "nix": ("-c", "--command"),
    # hyperfine's parameter list puts its values into the command (`-L x 'ls,rm -rf /' '{x}'`),
    # and watchexec's shell may be a command line of its own (review h153).
    "hyperfine": ("-L", "--parameter-list"),
    "watchexec": ("--shell",),
    # A secret injector's shell line (`doppler run --command 'rm -rf ~'`: review h165).
    "doppler": ("--command",), "infisical": ("--command",),
}
NESTED_SCRIPTS["cuda-gdb"] = NESTED_SCRIPTS["gdb"]
# The dynamic loader runs the program named after its options, on every glibc and musl system
# (`/lib64/ld-linux-x86-64.so.2 /bin/rm -rf /` is rm: review h151), by each name it goes by.
_LOADER_VALUES = {"--library-path", "--preload", "--argv0", "--audit", "--inhibit-rpath",
                  "--glibc-hwcaps-prepend", "--glibc-hwcaps-mask"}
for _loader in ("ld.so", "ld-linux.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
                "ld-linux-armhf.so.3", "ld-linux-riscv64-lp64d.so.1", "ld64.so.1", "ld64.so.2",
                "ld-musl-x86_64.so.1", "ld-musl-aarch64.so.1", "ld-musl-armhf.so.1"):
    WRAPPER_ARGS[_loader] = _LOADER_VALUES
# uv's options that take a separate value (uv run, uv tool run, uvx).
_UV_VALUES = {
    "--with", "-w", "--with-editable", "--with-requirements", "--python", "-p", "--index",
    "--default-index", "--index-url", "-i", "--extra-index-url", "--find-links", "-f",
    "--directory", "--project", "--config-file", "--cache-dir", "--env-file", "--extra",
    "--group", "--only-group", "--no-group", "--package", "--index-strategy",
    "--keyring-provider", "--resolution", "--prerelease", "--exclude-newer", "--link-mode",
    "--reinstall-package", "--upgrade-package", "-P", "--refresh-package", "--python-platform",
    "--color", "--allow-insecure-host", "--from", "--constraints", "-c", "--overrides",
    "--build-constraints", "-b", "--config-setting", "-C", "--no-build-isolation-package",
    "--no-binary-package", "--only-binary", "--no-build-package", "--python-preference",
    "--fork-strategy", "--no-extra", "--exclude-newer-package", "--torch-backend",
}
WRAPPER_ARGS["uvx"] = _UV_VALUES
_PNPM_EXEC = {"-C", "--dir", "-F", "--filter", "--reporter"}
_NPM_EXEC = {"-p", "--package", "-c", "--call", "-w", "--workspace", "--prefix", "--cache",
             "--registry", "--userconfig", "--globalconfig", "--loglevel", "--tag", "--otp",
             "--umask", "--editor", "--before", "--script-shell", "--shell", "--node-options",
             "--include", "--omit", "--location", "--cpu", "--os", "--libc"}
# Tools with a subcommand that runs the command after its own options (`npm exec -- CMD`,
# `uv run CMD`): the tool's options before the subcommand that take a value, and for each
# subcommand (its words), its own options that take one.
RUNNERS: dict[str, tuple[set[str], dict[tuple[str, ...], set[str]]]] = {
    "npm": ({"-w", "--workspace", "--prefix", "-C", "--cache", "--registry", "--userconfig"},
            {("exec",): _NPM_EXEC, ("x",): _NPM_EXEC, ("explore", "*"): set()}),
    # One word for a runner and its subcommand: `npx CMD`, `uvx CMD` (uv tool run), `pnpx CMD`,
    # `bunx CMD`, read both ways past an option not known to take a value (review s30:
    # `npx --loglevel silent touch` was read as the program `silent`).
    "npx": (set(), {(): _NPM_EXEC}),
    "uvx": (set(), {(): _UV_VALUES}),
    "pnpx": (set(), {(): {"--package", "--allow-build"}}),
    "bunx": (set(), {(): {"-p", "--package"}}),
    "pnpm": ({"-C", "--dir", "-F", "--filter", "--filter-prod", "--reporter", "--loglevel"},
             {("exec",): _PNPM_EXEC, ("recursive", "exec"): _PNPM_EXEC, ("m", "exec"): _PNPM_EXEC,
              ("multi", "exec"): _PNPM_EXEC,  # `pnpm recursive exec CMD` in every package (s31)
              ("dlx",): {"--package", "--allow-build"}, ("run",): set()}),
    "yarn": ({"--cwd"}, {("exec",): set(), ("dlx",): {"-p", "--package"}, ("run",): set(),
                         ("workspace", "*", "exec"): set(),
                         ("workspaces", "foreach", "exec"): {"--from", "--include", "--exclude",
                                                             "-j", "--jobs"}}),
    "bun": ({"--cwd"}, {("x",): {"-p", "--package"}}),
    "uv": ({"--directory", "--project", "--config-file", "--cache-dir", "--color",
            "--python-preference", "--allow-insecure-host"},
           {("run",): _UV_VALUES, ("tool", "run"): _UV_VALUES}),
    "poetry": ({"-C", "--directory", "-P", "--project"}, {("run",): set()}),
    "pipx": (set(), {("run",): {"--spec", "--python", "--pip-args", "--index-url", "-i"}}),
    "conda": (set(), {("run",): {"-n", "--name", "-p", "--prefix", "--cwd"}}),
    "mamba": (set(), {("run",): {"-n", "--name", "-p", "--prefix", "--cwd"}}),
    "micromamba": (set(), {("run",): {"-n", "--name", "-p", "--prefix", "--cwd"}}),
    "pdm": ({"-p", "--project"}, {("run",): {"-p", "--project", "--venv"}}),
    "hatch": ({"-e", "--env", "-p", "--project", "--data-dir", "--cache-dir", "--config"},
              {("run",): set(), ("env", "run"): {"-e", "--env", "-i", "--include", "-x",
                                                 "--exclude", "--filter"}}),
    "pipenv": ({"--python"}, {("run",): set()}),
    "rye": (set(), {("run",): {"--pyproject"}}),
    # Version managers run a command with their shims first on PATH (review s33, helper 128).
    "pyenv": (set(), {("exec",): set()}),
    "rbenv": (set(), {("exec",): set()}),
    "nodenv": (set(), {("exec",): set()}),
    "goenv": (set(), {("exec",): set()}),
    "asdf": (set(), {("exec",): set()}),
    "direnv": (set(), {("exec", "*"): set()}),
    "mise": ({"-C", "--cd", "-E", "--env"}, {("exec",): {"-j", "--jobs", "-c", "--command"},
                                            ("x",): {"-j", "--jobs", "-c", "--command"}}),
}
WRAPPERS = set(WRAPPER_ARGS)
WRAPPER_POSITIONALS = {"timeout": 1, "chrt": 1, "taskset": 1, "flock": 1,  # before the command
                       "chroot": 1, "runcon": 1, "faketime": 1}
# runcon CONTEXT COMMAND, or runcon -t TYPE COMMAND: no context once an option set a part of it.
POSITIONAL_WITHOUT_OPTIONS = {"runcon"}
# Short options whose value is optional, so only ever attached (`nsenter -m/proc/1/ns/mnt`): the
# rest of the cluster is that value.
OPTIONAL_ATTACHED = {"nsenter": "muinpCUTrw", "watch": "d"}
# setarch ARCH [options] COMMAND: the positional comes before the options.
POSITIONAL_FIRST = {"setarch": 1}
