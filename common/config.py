"""Config loading: `defaults` + named blocks from configs.yaml, then `--key value` flags.

Every failure raises ConfigError with one line naming what was wrong and what is allowed, so
entry points can print it and exit non-zero instead of showing a traceback.
"""
import difflib
import pathlib
import sys
import textwrap

import elements
from ruamel.yaml import YAML

from envs import wrappers

CONFIGS_FILE = pathlib.Path(__file__).resolve().parent.parent / 'configs.yaml'

# Keys whose value must come from a fixed set. Cores register their names in vsg.cores, which
# checks `core` itself so this module stays free of agent imports.
CHOICES = {
    'precision': ('float32', 'mixed_float16', 'mixed_bfloat16', 'auto'),
    'strategy': ('default', 'mirrored', 'multi_worker'),
    'actor.dist': ('auto', 'trunc_normal', 'onehot'),
    'actor_grad': ('auto', 'dynamics', 'reinforce'),
    'reward_head.dist': ('mse', 'symlog_mse', 'twohot'),
    'critic.dist': ('mse', 'twohot'),
    'decoder.resolution': (64, 32),
    **{f'{block}.norm': ('none', 'layer')
       for block in ('encoder', 'decoder', 'reward_head', 'cont_head', 'actor', 'critic')},
}
POSITIVE = (
    'steps', 'batch_size', 'batch_length', 'imag_horizon',
    'env.action_repeat', 'env.time_limit', 'env.amount', 'eval_eps', 'log_every', 'save_every',
    'keep_checkpoints', 'rssm.deter', 'rssm.hidden', 'rssm.stoch', 'encoder.depth', 'decoder.depth', 'decoder.every',
    'svsg.stoch', 'svsg.hidden', 'slot.hidden', 'slot.heads', 'slow_target_update',
    *(f'slots.{key}' for key in (
        'resolution', 'tokens', 'encoder_channels', 'mlp_hidden', 'num_slots', 'slot_size', 'iters_first', 'iters_later',
        'predictor_heads', 'decoder_grid', 'decoder_size', 'decoder_channels', 'window', 'batch_size', 'steps',
        'test_episodes', 'eval_windows', 'log_every', 'save_every')))
ABOVE_ZERO = ('train_ratio', 'slots.lr', 'slots.clip', 'slot.min_std')
NON_NEGATIVE = ('status_every', 'strategy_devices', 'save_every_minutes', 'kl.dyn', 'kl.rep', 'critic.slow_reg', 'slots.warmup')
UNIT_INTERVAL = ('discount', 'discount_lambda', 'kl.balance', 'return_norm.decay', 'unimix.latents', 'unimix.actor')
OPEN_UNIT_INTERVAL = ('gate.prior',)  # A Bernoulli prior of 0 or 1 makes the gate KL infinite.
FRACTION = ('slow_target_fraction',)  # 0 would never move the target.
# The range tables with their test and what a value must do, shared by validation and --help.
RANGES = (
    (POSITIVE, lambda value: value >= 1, 'be a positive integer'),
    (ABOVE_ZERO, lambda value: value > 0, 'be above 0'),
    (NON_NEGATIVE, lambda value: value >= 0, 'be 0 or more'),
    (UNIT_INTERVAL, lambda value: 0 <= value <= 1, 'lie in [0, 1]'),
    (OPEN_UNIT_INTERVAL, lambda value: 0 < value < 1, 'lie in (0, 1), both ends excluded'),
    (FRACTION, lambda value: 0 < value <= 1, 'lie in (0, 1]'),
)
# Blocks that take keys beyond those in `defaults`, each a float: `loss_scales.<key>` weighs the decoder
# loss of any observation key, e.g. --loss_scales.position 2.
OPEN_BLOCKS = ('loss_scales',)
HELP_FLAGS = ('--help', '-h')
RENAMED = {'env.camera': 'env.dmc.camera'}  # old name -> new name, for runs saved before the rename
# Replaced by train_ratio: `train_steps` updates every `train_every` agent steps. Flags and runs saved
# before the change are converted to the same schedule (`_convert_retired`).
RETIRED = ('train_every', 'train_steps')


class ConfigError(ValueError):
    pass


class HelpRequested(Exception):
    """Raised by load() for --help or -h; the message is the help text to print."""


def read_blocks(path=CONFIGS_FILE):
    return YAML(typ='safe').load(pathlib.Path(path).read_text())


def load(argv, path=CONFIGS_FILE):
    """Parses `[--configs NAME ...] [--key value ...]` into a validated elements.Config.

    With --help or -h anywhere, raises HelpRequested holding help_text() for the named configs
    given; other flags are ignored, so help still works next to a mistyped one.
    """
    blocks = read_blocks(path)
    names, rest = _split_configs_flag([arg for arg in argv if arg not in HELP_FLAGS])
    config = elements.Config(blocks['defaults'])
    for name in _merge_order(names, blocks):
        block = {key: value for key, value in blocks[name].items() if key != 'configs'}
        config = _update(config, block, f"named config '{name}'")
    if any(arg in HELP_FLAGS for arg in argv):
        raise HelpRequested(help_text(config, names, path))
    rest, retired = _take_retired(rest)
    config = _parse_flags(config, rest)
    if retired:
        if any(arg.split('=', 1)[0] == '--train_ratio' for arg in rest):
            raise ConfigError('set --train_ratio or the old --train_every/--train_steps, not both '
                              '(train_ratio: replayed steps per agent step)')
        config = _convert_retired(config, retired)
        print(f"warning: --train_every/--train_steps are replaced by train_ratio; running with --train_ratio "
              f"{config.train_ratio:g}, the same schedule", file=sys.stderr)
    validate(config)
    return config


def help_text(config, names=(), path=CONFIGS_FILE, width=100):
    """The named configs with their comments, then every key of `config` (defaults merged with the
    named configs `names`) with its value, allowed values and comment, grouped as in configs.yaml."""
    comments = _comments(pathlib.Path(path).read_text())
    lines = ['usage: [--configs NAME ...] [--KEY VALUE ...]', '', 'Named configs, merged over defaults in the order given:']
    for name in read_blocks(path):
        if name != 'defaults':
            above, inline = comments.get(name, ((), ''))
            lines.append(_notes(f'  {name:<11} ', [' '.join([*above, inline]).strip()], width))
    lines += ['', f"Keys with their values from {' + '.join(['defaults', *names])}:"]
    flags = {key: f'  --{key} {_flag_value(value)}' for key, value in config.flat.items()}
    column = max(len(flag) for flag in flags.values()) + 2
    group, group_nested = None, False
    for key, flag in flags.items():
        top = key.split('.')[0]
        above, inline = comments.get(f'defaults.{top}', ((), ''))
        nested = top != key  # A nested block's comments head its group; a key's end comment follows it.
        if top != group:
            if above or nested or group_nested:
                lines.append('')
            headings = [*above, inline] if nested else above
            lines += [textwrap.fill(text, width, initial_indent='  # ', subsequent_indent='  # ') for text in headings if text]
            group, group_nested = top, nested
        lines.append(_notes(flag.ljust(column), [_rule(key), '' if nested else inline], width))
    return '\n'.join(lines)


def validate(config):
    for key, allowed in CHOICES.items():
        if config[key] not in allowed:
            raise ConfigError(f"{key}={config[key]!r} is not allowed; choose one of {', '.join(map(str, allowed))}")
    for keys, test, rule in RANGES:
        for key in keys:
            if not test(config[key]):
                raise ConfigError(f'{key}={config[key]} must {rule}')
    for key, value in config.flat.items():
        if key.startswith('env.') and key.endswith('.obs') and value not in wrappers.OBS_MODES:
            raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(wrappers.OBS_MODES)}")
    if config.rssm.discrete < 0:
        raise ConfigError(f'rssm.discrete={config.rssm.discrete} must be 0 (Gaussian latents) or more (classes)')


def load_run(logdir, path=CONFIGS_FILE):
    """The config a run saved in `logdir/config.yaml`, with any key added to configs.yaml since the run
    was written taken from `defaults` (so older runs still evaluate) and renamed keys (RENAMED) under
    their new names. A saved key that configs.yaml no longer knows is a ConfigError: its meaning is gone."""
    saved_path = pathlib.Path(logdir) / 'config.yaml'
    try:
        saved = elements.Config.load(saved_path)
    except Exception as e:  # Unreadable YAML of any kind: one line, no traceback.
        problem, mark = getattr(e, 'problem', None), getattr(e, 'problem_mark', None)
        where = f' at line {mark.line + 1}' if mark is not None else ''
        reason = f'{problem}{where}' if problem else str(e).strip().splitlines()[0]
        raise ConfigError(f'cannot read {saved_path}: {type(e).__name__}: {reason}') from None
    saved = {RENAMED.get(key, key): value for key, value in saved.flat.items()}
    retired = {key: saved.pop(key) for key in RETIRED if key in saved}
    config = _update(elements.Config(read_blocks(path)['defaults']), saved, f'the saved {saved_path}')
    return _convert_retired(config, retired) if retired else config


def _take_retired(argv):
    """(argv without the RETIRED flags, {retired key: value})."""
    rest, retired, i = [], {}, 0
    while i < len(argv):
        key, eq, value = argv[i][2:].partition('=') if argv[i].startswith('--') else ('', '', '')
        if key in RETIRED:
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ''
            retired[key] = value
        else:
            rest.append(argv[i])
        i += 1
    return rest, retired


def _convert_retired(config, retired):
    """`config` with the train_ratio of `train_steps` updates every `train_every` agent steps; a key
    not given keeps what `config`'s train_ratio implies."""
    replayed = config.batch_size * config.batch_length
    values = {'train_every': replayed / config.train_ratio, 'train_steps': 1}
    for key, value in retired.items():
        try:
            values[key] = int(value)
        except (TypeError, ValueError):
            values[key] = 0
        if values[key] < 1:
            raise ConfigError(f'{key}={value!r} must be a positive integer (or use train_ratio)')
    return config.update(train_ratio=values['train_steps'] * replayed / values['train_every'])


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


def _merge_order(names, blocks, within=()):
    """The named configs in the order they merge: a block's own `configs: [...]` list before the block."""
    for name in names:
        if name not in blocks or name == 'defaults':
            allowed = ', '.join(k for k in blocks if k != 'defaults')
            raise ConfigError(f"unknown named config '{name}'; allowed: {allowed}")
        if name in within:
            raise ConfigError(f"named config '{name}' includes itself via {' -> '.join([*within, name])}")
        included = blocks[name].get('configs', [])
        if not isinstance(included, list):
            raise ConfigError(f"named config '{name}' sets configs: {included!r}; it must be a list of named configs")
        yield from _merge_order(included, blocks, (*within, name))
        yield name


def _update(config, mapping, where):
    flat = elements.Config(mapping).flat
    for key in flat:
        if key not in config.flat and _is_open(key):
            config = _with_key(config, key)
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
            if key not in config.flat and _is_open(key):
                config = _with_key(config, key)
            if key not in config.flat:
                raise ConfigError(f"unknown flag '--{key}'{_suggest(key, config)}")
        elif key and isinstance(config.flat[key], bool) and arg.lower() in ('true', 'false'):
            argv = argv[:i] + [arg.capitalize()] + argv[i + 1:]  # YAML spells booleans lower case
    try:
        return elements.Flags(config).parse(argv, help_exits=True)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f'bad flags: {_message(e)}') from None


def _is_open(key):
    block, _, name = key.partition('.')
    return block in OPEN_BLOCKS and name and '.' not in name


def _with_key(config, key):
    """`config` with the open block's new `key` at 1.0, the value then set like any other key's."""
    return elements.Config({**config.flat, key: 1.0})


def _rule(key):
    if key in CHOICES:
        return f"must be one of {', '.join(map(str, CHOICES[key]))}"
    return next((f'must {rule}' for keys, _, rule in RANGES if key in keys), '')


def _notes(head, notes, width):
    """`head` followed by the non-empty `notes`, wrapped under their first column."""
    text = '; '.join(note for note in notes if note)
    return textwrap.fill(text, width, initial_indent=head, subsequent_indent=' ' * len(head)) if text else head.rstrip()


def _flag_value(value):
    """A value as a flag takes it."""
    if isinstance(value, (tuple, list)):
        return ','.join(str(item) for item in value)
    return str(value) if value != '' else "''"


def _comments(text):
    """{name: (comment lines right above, comment at the line's end)} for each top-level block of
    configs.yaml (name `dmc`) and each key inside one (name `defaults.rssm`). The file keeps one
    key per line and no ' #' inside values, which is all this line-based read relies on."""
    comments, above, block = {}, [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith('#'):
            above.append(stripped.lstrip('#').strip())
            continue
        if stripped:
            content, _, inline = line.partition(' #')
            key = content.strip().split(':')[0]
            if line[0].isspace():
                key = f'{block}.{key}'
            else:
                block = key
            comments[key] = (tuple(above), inline.strip())
        above = []
    return comments


def _suggest(key, config):
    close = difflib.get_close_matches(key, list(config.flat), n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ''
    return hint + ' (all keys are listed under `defaults` in configs.yaml)'


def _message(error):
    return str(error.args[0]) if error.args else type(error).__name__
