"""Learning curves: `python -m vsg.plot [LOGDIR ...] [--group LABEL=GLOB ...] --out curve.png`.

Reads each run's metrics.jsonl and plots each key against env frames, one line per run and key. A
`--group` gathers the runs its glob matches (e.g. the seeds of one core) into one line, their mean,
with a band over runs (min-max, standard error or standard deviation). Horizontal baselines, such as
a random policy, are drawn with `--baseline LABEL=VALUE`, and published per-seed curves as a mean with
a min-max band with `--published LABEL=CSV:TASK:METHOD` (rows `source,task,method,seed,env_frames,return`,
as docs/results/published_dmc_vision.csv holds them). `--reach VALUE` prints, for every run, the first
env frame at which the first key reached VALUE and the run's wall-clock hours then (`stats/wall_hours`,
logged since 2026-12-06), as JSON lines; without `--out` nothing is drawn.

Runs of vsg.train log env frames. Older ones (no `stats/agent_steps` in their metrics.jsonl) logged
agent steps, which are multiplied by the run's `env.action_repeat` from its config.yaml. A run without
that key (e.g. a DreamerV2 reference logdir) is taken to log env frames already, and a key missing
from it is looked up with '/' spelt '_' (DreamerV2 writes `eval_return` for our `eval/return`).
"""
import argparse
import glob
import json
import pathlib
import sys

import numpy as np

from common.logger import WALL_HOURS, logs_frames, read_records

BANDS = ('minmax', 'stderr', 'std')


def read_curve(logdir, key):
    """(env frames, values) of `key` in `logdir`/metrics.jsonl; values logged at the same frame (several
    eval episodes, a resumed run) are averaged."""
    logdir = pathlib.Path(logdir)
    path = logdir / 'metrics.jsonl'
    if not path.exists():
        raise FileNotFoundError(f'{path} does not exist; pass run directories written by vsg.train')
    records = read_records(path)
    repeat = 1 if logs_frames(records) else _action_repeat(logdir / 'config.yaml')
    if not any(key in record for record in records):
        key = key.replace('/', '_')
    curve = {}
    for record in records:
        if key in record:
            curve.setdefault(record['step'] * repeat, []).append(record[key])
    frames = np.array(sorted(curve))
    return frames, np.array([np.mean(curve[f]) for f in frames], float)


def reach(logdir, key, value):
    """{'run', 'key', 'reach', 'env_frames', 'wall_hours'}: the first env frame at which `key` is at
    least `value` in `logdir`, and the run's wall-clock hours at that frame (interpolated between the
    logged points); None for what did not happen or was not logged."""
    frames, values = read_curve(logdir, key)
    hit = np.flatnonzero(values >= value)
    result = {'run': str(logdir), 'key': key, 'reach': value, 'env_frames': None, 'wall_hours': None}
    if len(hit):
        result['env_frames'] = int(frames[hit[0]])
        clock_frames, hours = read_curve(logdir, WALL_HOURS)
        if len(clock_frames) and clock_frames[0] <= frames[hit[0]] <= clock_frames[-1]:
            result['wall_hours'] = round(float(np.interp(frames[hit[0]], clock_frames, hours)), 3)
    return result


def _action_repeat(config_path):
    if not config_path.exists():
        return 1
    import elements
    config = elements.Config.load(config_path)
    return config['env.action_repeat'] if 'env.action_repeat' in config.flat else 1


def group_curve(logdirs, key, band='minmax'):
    """(frames, mean, low, high) over the runs that have `key`, on the frames where every such run
    has data (each run interpolated between its own points); None if no run has `key`."""
    curves = [c for c in (read_curve(d, key) for d in logdirs) if len(c[0])]
    if not curves:
        return None
    start, end = max(c[0][0] for c in curves), min(c[0][-1] for c in curves)
    frames = np.unique(np.concatenate([c[0] for c in curves]))
    frames = frames[(frames >= start) & (frames <= end)]
    values = np.stack([np.interp(frames, *c) for c in curves])
    mean = values.mean(0)
    if band == 'minmax':
        return frames, mean, values.min(0), values.max(0)
    spread = values.std(0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
    if band == 'stderr':
        spread = spread / np.sqrt(len(curves))
    return frames, mean, mean - spread, mean + spread


def published_curve(path, task, method):
    """(frames, mean, low, high) over the seeds of `task` and `method` in a published-scores CSV, on
    the frames every seed reports."""
    import csv
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f'{path} does not exist; give a CSV of published curves')
    seeds = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if row['task'] == task and row['method'] == method:
                seeds.setdefault(row['seed'], {})[float(row['env_frames'])] = float(row['return'])
    if not seeds:
        raise ValueError(f'{path} has no rows of task {task!r} and method {method!r}')
    frames = np.array(sorted(set.intersection(*(set(curve) for curve in seeds.values()))))
    values = np.array([[curve[f] for f in frames] for curve in seeds.values()])
    return frames, values.mean(0), values.min(0), values.max(0), len(seeds)


def expand(pattern):
    """The run directories (holding metrics.jsonl) that a glob matches, sorted; an error if none."""
    runs = sorted(p for p in glob.glob(pattern) if (pathlib.Path(p) / 'metrics.jsonl').exists())
    if not runs:
        raise FileNotFoundError(f"'{pattern}' matches no run directory holding a metrics.jsonl")
    return runs


def plot(logdirs=(), out='curve.png', keys=('eval/return',), baselines=(), title=None, groups=(), band='minmax',
         published=(), max_frames=None):
    """`groups` is a list of (label, [logdir, ...]); each is drawn as its mean with a `band`.
    `published` is a list of (label, (csv path, task, method)), drawn dashed with a min-max band;
    `max_frames` ends the x axis there (published curves run much longer than ours)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if band not in BANDS:
        raise ValueError(f"band '{band}' is not allowed; choose one of {', '.join(BANDS)}")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plotted = 0
    suffix = lambda key: f' {key}' if len(keys) > 1 else ''
    for logdir in logdirs:
        for key in keys:
            frames, values = read_curve(logdir, key)
            if len(frames):
                ax.plot(frames, values, marker='o', markersize=3, label=pathlib.Path(logdir).name + suffix(key))
                plotted += 1
    for label, runs in groups:
        for key in keys:
            curve = group_curve(runs, key, band)
            if curve is None:
                continue
            frames, mean, low, high = curve
            line, = ax.plot(frames, mean, label=f"{label} ({len(runs)} run{'s' if len(runs) > 1 else ''}){suffix(key)}")
            ax.fill_between(frames, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            plotted += 1
    if not plotted:
        raise ValueError(f"no run has values for {', '.join(map(repr, keys))}")
    for label, (path, task, method) in published:
        frames, mean, low, high, count = published_curve(path, task, method)
        shown = frames <= (max_frames or np.inf)
        frames, mean, low, high = frames[shown], mean[shown], low[shown], high[shown]
        line, = ax.plot(frames, mean, linestyle='--', marker='s', markersize=3, label=f'{label} ({count} seeds, published)')
        ax.fill_between(frames, low, high, color=line.get_color(), alpha=0.12, linewidth=0)
    styles = ('--', ':', '-.', (0, (5, 1, 1, 1)))  # Baselines in gray, told apart by their dashes.
    for i, (label, value) in enumerate(baselines):
        ax.axhline(value, color='gray', linestyle=styles[i % len(styles)], label=label)
    if max_frames:
        ax.set_xlim(0, max_frames)
    ax.set_xlabel('env frames')
    ax.set_ylabel(keys[0] if len(keys) == 1 else 'return')
    ax.set_title(title or ', '.join(keys) + (f' (mean, {band} band)' if groups else ''))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _pair(text, kind):
    label, sep, value = text.rpartition('=')
    if not sep or not label or not value:
        raise argparse.ArgumentTypeError(f"{kind} '{text}' must look like LABEL={kind.upper()}")
    return label, value


def _baseline(text):
    label, value = _pair(text, 'baseline')
    try:
        return label, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"baseline '{text}' must look like LABEL=NUMBER") from None


def _published(text):
    label, value = _pair(text, 'published')
    parts = value.rsplit(':', 2)
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"published '{text}' must look like LABEL=CSV:TASK:METHOD")
    return label, tuple(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('logdirs', nargs='*', help='runs drawn one line each')
    parser.add_argument('--group', action='append', default=[], type=lambda t: _pair(t, 'glob'),
                        help="LABEL=GLOB, repeatable: the runs the glob matches as one mean line with a band (quote the glob)")
    parser.add_argument('--band', default='minmax', choices=BANDS, help='band around a group mean (default: minmax)')
    parser.add_argument('--out', default=None, help='PNG path (needed unless --reach)')
    parser.add_argument('--key', action='append', help='metric to plot, repeatable (default: eval/return)')
    parser.add_argument('--baseline', action='append', type=_baseline, default=[], help='LABEL=VALUE, repeatable')
    parser.add_argument('--published', action='append', type=_published, default=[],
                        help='LABEL=CSV:TASK:METHOD, repeatable: published per-seed curves as a mean with a min-max band')
    parser.add_argument('--max_frames', type=float, default=None, help='end of the x axis, in env frames')
    parser.add_argument('--title', default=None)
    parser.add_argument('--reach', type=float, default=None, metavar='VALUE',
                        help="print each run's first env frame (and wall hours) with the first key at VALUE or more")
    args = parser.parse_args(argv)
    if not args.logdirs and not args.group:
        parser.error('give at least one LOGDIR or --group LABEL=GLOB')
    if args.out is None and args.reach is None:
        parser.error('give --out PNG, --reach VALUE or both')
    keys = args.key or ['eval/return']
    try:
        groups = [(label, expand(pattern)) for label, pattern in args.group]
        if args.reach is not None:
            for logdir in [*args.logdirs, *(run for _, runs in groups for run in runs)]:
                print(json.dumps(reach(logdir, keys[0], args.reach)))
        if args.out is not None:
            print(plot(args.logdirs, args.out, keys, args.baseline, args.title, groups, args.band,
                       args.published, args.max_frames))
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
