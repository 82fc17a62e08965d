"""Learning curves: `python -m vsg.plot LOGDIR [LOGDIR ...] --out curve.png [--key eval/return ...]`.

Reads each run's metrics.jsonl and plots each key against env frames (agent steps times the run's
action repeat), one line per run and key, with optional horizontal baselines such as a random policy.
"""
import argparse
import json
import pathlib
import sys

import numpy as np


def read_curve(logdir, key):
    """(env frames, values) of `key` in `logdir`/metrics.jsonl."""
    logdir = pathlib.Path(logdir)
    path = logdir / 'metrics.jsonl'
    if not path.exists():
        raise FileNotFoundError(f'{path} does not exist; pass run directories written by vsg.train')
    repeat = 1
    config = logdir / 'config.yaml'
    if config.exists():
        import elements
        repeat = elements.Config.load(config).env.action_repeat
    steps, values = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if key in record:
            steps.append(record['step'] * repeat)
            values.append(record[key])
    return np.array(steps), np.array(values)


def plot(logdirs, out, keys=('eval/return',), baselines=(), title=None):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    plotted = 0
    for logdir in logdirs:
        for key in keys:
            steps, values = read_curve(logdir, key)
            if len(steps):
                label = pathlib.Path(logdir).name + (f' {key}' if len(keys) > 1 else '')
                ax.plot(steps, values, marker='o', markersize=3, label=label)
                plotted += 1
    if not plotted:
        raise ValueError(f"no run has values for {', '.join(map(repr, keys))}")
    for label, value in baselines:
        ax.axhline(value, color='gray', linestyle='--', label=label)
    ax.set_xlabel('env frames')
    ax.set_ylabel(keys[0] if len(keys) == 1 else 'return')
    ax.set_title(title or ', '.join(keys))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _baseline(text):
    label, _, value = text.rpartition('=')
    try:
        return (label or 'baseline', float(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"baseline '{text}' must look like LABEL=NUMBER") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('logdirs', nargs='+')
    parser.add_argument('--out', required=True, help='PNG path')
    parser.add_argument('--key', action='append', help='metric to plot, repeatable (default: eval/return)')
    parser.add_argument('--baseline', action='append', type=_baseline, default=[], help='LABEL=VALUE, repeatable')
    parser.add_argument('--title', default=None)
    args = parser.parse_args(argv)
    try:
        print(plot(args.logdirs, args.out, args.key or ['eval/return'], args.baseline, args.title))
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
