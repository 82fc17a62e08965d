"""Config loading: `defaults` + named blocks from configs.yaml, then `--key value` flags.

Every failure raises ConfigError with one line naming what was wrong and what is allowed, so
entry points can print it and exit non-zero instead of showing a traceback.
"""
import difflib
import pathlib

import elements
from ruamel.yaml import YAML

CONFIGS_FILE = pathlib.Path(__file__).resolve().parent.parent / 'configs.yaml'

# Keys whose value must come from a fixed set. Cores register their names in vsg.cores, which
# checks `core` itself so this module stays free of agent imports.
CHOICES = {
    'precision': ('float32', 'mixed_float16', 'mixed_bfloat16'),
    'actor.dist': ('auto', 'trunc_normal', 'onehot'),
    'actor_grad': ('auto', 'dynamics', 'reinforce'),
}
POSITIVE = (
    'steps', 'batch_size', 'batch_length', 'imag_horizon', 'train_every', 'train_steps',
    'env.action_repeat', 'env.time_limit', 'env.amount', 'eval_eps', 'log_every', 'save_every',
    'rssm.deter', 'rssm.hidden', 'rssm.stoch', 'encoder.depth', 'decoder.depth', 'svsg.stoch', 'svsg.hidden')
UNIT_INTERVAL = ('discount', 'discount_lambda', 'kl.balance', 'return_norm.decay')
OPEN_UNIT_INTERVAL = ('gate.prior',)  # A Bernoulli prior of 0 or 1 makes the gate KL infinite.


class ConfigError(ValueError):
    pass


def read_blocks(path=CONFIGS_FILE):
    return YAML(typ='safe').load(pathlib.Path(path).read_text())


def load(argv, path=CONFIGS_FILE):
    """Parses `[--configs NAME ...] [--key value ...]` into a validated elements.Config."""
    blocks = read_blocks(path)
    names, rest = _split_configs_flag(argv)
    config = elements.Config(blocks['defaults'])
    for name in names:
        if name not in blocks or name == 'defaults':
            allowed = ', '.join(k for k in blocks if k != 'defaults')
            raise ConfigError(f"unknown named config '{name}'; allowed: {allowed}")
        config = _update(config, blocks[name], f"named config '{name}'")
    config = _parse_flags(config, rest)
    validate(config)
    return config


def validate(config):
    for key, allowed in CHOICES.items():
        if config[key] not in allowed:
            raise ConfigError(f"{key}={config[key]!r} is not allowed; choose one of {', '.join(allowed)}")
    for key in POSITIVE:
        if config[key] < 1:
            raise ConfigError(f'{key}={config[key]} must be a positive integer')
    for key in UNIT_INTERVAL:
        if not 0 <= config[key] <= 1:
            raise ConfigError(f'{key}={config[key]} must lie in [0, 1]')
    for key in OPEN_UNIT_INTERVAL:
        if not 0 < config[key] < 1:
            raise ConfigError(f'{key}={config[key]} must lie in (0, 1), both ends excluded')
    if tuple(config.env.size) != (64, 64):
        raise ConfigError(f'env.size={list(config.env.size)} is not supported; the CNN takes 64 64 images')
    if config.rssm.discrete < 0:
        raise ConfigError(f'rssm.discrete={config.rssm.discrete} must be 0 (Gaussian latents) or more (classes)')


def _split_configs_flag(argv):
    names, rest, i = [], [], 0
    while i < len(argv):
        if argv[i] == '--configs':
            i += 1
            while i < len(argv) and not argv[i].startswith('--'):
                names.append(argv[i])
                i += 1
        else:
            rest.append(argv[i])
            i += 1
    return names, rest


def _update(config, mapping, where):
    flat = elements.Config(mapping).flat
    for key in flat:
        if key not in config.flat:
            raise ConfigError(f"{where} sets unknown key '{key}'{_suggest(key, config)}")
    try:
        return config.update(flat)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f'{where}: {_message(e)}') from None


def _parse_flags(config, argv):
    key = None
    for i, arg in enumerate(argv):
        if arg.startswith('--'):
            key = arg[2:].split('=', 1)[0]
            if key not in config.flat:
                raise ConfigError(f"unknown flag '--{key}'{_suggest(key, config)}")
        elif key and isinstance(config.flat[key], bool) and arg.lower() in ('true', 'false'):
            argv = argv[:i] + [arg.capitalize()] + argv[i + 1:]  # YAML spells booleans lower case
    try:
        return elements.Flags(config).parse(argv, help_exits=True)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f'bad flags: {_message(e)}') from None


def _suggest(key, config):
    close = difflib.get_close_matches(key, list(config.flat), n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ''
    return hint + ' (all keys are listed under `defaults` in configs.yaml)'


def _message(error):
    return str(error.args[0]) if error.args else type(error).__name__
