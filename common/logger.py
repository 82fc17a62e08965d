"""Metrics go to the terminal and to `metrics.jsonl` in the logdir through an elements.Logger."""
import elements


def make(logdir, step):
    outputs = [
        elements.logger.TerminalOutput(),
        elements.logger.JSONLOutput(logdir, 'metrics.jsonl', parallel=False),
    ]
    return elements.Logger(step, outputs)


class Mean:
    """Averages scalar metrics between two writes of the logger."""

    def __init__(self):
        self._sums, self._counts = {}, {}

    def add(self, metrics, prefix=None):
        for key, value in metrics.items():
            key = f'{prefix}/{key}' if prefix else key
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
            self._counts[key] = self._counts.get(key, 0) + 1

    def result(self):
        means = {key: total / self._counts[key] for key, total in self._sums.items()}
        self._sums, self._counts = {}, {}
        return means
