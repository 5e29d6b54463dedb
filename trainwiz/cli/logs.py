"""``trainwiz logs RUN``: print or follow a rank's log (or the launcher's), read from the end."""

from __future__ import annotations

from trainwiz.errors import TrainwizError
from trainwiz.launchers import slurm_jobs
from trainwiz.launchers.rundir import (
    rank_log_paths,
    rank_output_path,
    read_status,
    resolve_run,
    slurm_node_of_rank,
    tail_lines,
)


def _print_file(path, n, stream) -> int:
    """Print the file (its last ``n`` lines, read from the end); return the offset printed to."""
    if path is None or not path.is_file():
        return 0
    size = path.stat().st_size
    if n is not None:
        lines = tail_lines(path, n)
        if lines:
            stream.write("\n".join(lines) + "\n")
    else:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                stream.write(chunk.decode("utf-8", "replace"))
                size = fh.tell()
    stream.flush()
    return size


def _rank_paths(run_dir, rank: int, out, err):
    """What to print for a rank: its output in the order written when the run kept it
    (``output.log``, on stdout), else its stdout then its stderr."""
    both = rank_output_path(run_dir, rank)
    if both is not None:
        return [(both, out)]
    o, e = rank_log_paths(run_dir, rank)
    if o is None:
        return None
    return [(o, out), (e, err)]


def cmd_logs(args) -> int:
    import sys
    import time

    if args.lines is not None and args.lines < 0:
        raise TrainwizError(f"-n {args.lines}: expected a number of lines, 0 or more")
    run_dir = resolve_run(args.run)
    if args.launcher and slurm_jobs.is_slurm_run(run_dir):  # the job's output, each node's logs
        paths = [(p, sys.stdout) for p in slurm_jobs.launcher_logs(run_dir)]
    elif args.launcher:
        paths = [(run_dir / "launcher.log", sys.stdout), (run_dir / "supervisor.log", sys.stderr)]
    else:
        status = read_status(run_dir)
        nranks = len(status.ranks) or (status.num_processes or 0) * max(1, status.num_machines)
        paths = _rank_paths(run_dir, args.rank, sys.stdout, sys.stderr)
        if paths is None and not args.follow:
            if status.ranks and args.rank not in {r.rank for r in status.ranks}:
                raise TrainwizError(f"run {status.id} has no rank {args.rank} on this machine "
                                    f"(ranks: {', '.join(str(r.rank) for r in status.ranks)})")
            if nranks and args.rank >= nranks:
                raise TrainwizError(f"run {status.id} has no rank {args.rank}")
            print(f"rank {args.rank} has no log yet (state {status.state})", file=sys.stderr)
            return 0
        paths = paths or [(None, sys.stdout)]
        node_dir = slurm_node_of_rank(run_dir, args.rank) if status.slurm else None
        if node_dir is not None:  # a Slurm run: which node the rank ran on
            print(f"rank {args.rank} ran on {slurm_jobs.node_name(node_dir)}", file=sys.stderr,
                  flush=True)
    headers = args.launcher and slurm_jobs.is_slurm_run(run_dir)  # several files: name each
    offsets = []
    for path, stream in paths:
        if headers and path is not None and path.is_file():
            print(f"==> {path} <==", file=stream, flush=True)
        offsets.append(_print_file(path, args.lines, stream))
    if not args.follow:
        return 0
    try:
        while True:
            if not args.launcher and paths[0][0] is None:
                found = _rank_paths(run_dir, args.rank, sys.stdout, sys.stderr)
                if found is not None:
                    paths, offsets = found, [0] * len(found)
            for i, (path, stream) in enumerate(paths):
                if path is None or not path.is_file():
                    continue
                with open(path, "rb") as fh:
                    fh.seek(offsets[i])
                    chunk = fh.read(1 << 20)
                if chunk:
                    stream.write(chunk.decode("utf-8", "replace"))
                    stream.flush()
                    offsets[i] += len(chunk)
            if read_status(run_dir).finished and all(
                    p is None or not p.is_file() or p.stat().st_size == o
                    for (p, _), o in zip(paths, offsets)):
                return 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
