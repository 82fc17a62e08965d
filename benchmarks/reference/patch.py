"""Patch the unpacked dreamerv2==2.2.0 sdist so it runs on Python 3.11, TF 2.21, numpy 2.

    python patch.py PATH/TO/dreamerv2-2.2.0/dreamerv2

Only what today's stack forces; every edit names its reason (docs/results/benchmarks.md lists them too).
Each edit states how often its pattern occurs and stops with an error if the count differs, so
a different sdist or a second run over a patched tree fails loudly instead of half-patching.
Keras: the code runs on Keras 2 (tf-keras) through TF_USE_LEGACY_KERAS=1, set by learn.sh and
speed.sh; that is an environment setting, not an edit.
"""
import pathlib
import re
import sys

# (file, regex, replacement, expected number of matches, reason)
PATCHES = [
    ('common/nets.py',
     r'from tensorflow\.keras\.mixed_precision import experimental as prec',
     'from tensorflow.keras import mixed_precision as prec', 1,
     'tf.keras.mixed_precision.experimental was removed (TF 2.11+); the stable module has the '
     'same global_policy()'),
    ('train.py',
     r'from tensorflow\.keras\.mixed_precision import experimental as prec\n'
     r"(\s+)prec\.set_policy\(prec\.Policy\('mixed_float16'\)\)",
     "from tensorflow.keras import mixed_precision as prec\n"
     r"\1prec.set_global_policy(prec.Policy('mixed_float16'))", 1,
     'same removal; set_policy is called set_global_policy in the stable module'),
    ('train.py',
     r"\n  assert tf\.config\.experimental\.list_physical_devices\('GPU'\), message",
     '', 1,
     'the run asserts a GPU ("To actually train on CPU remove this assert"); this machine has none'),
    ('train.py',
     r'yaml\.safe_load\(', 'yaml.YAML(typ="safe").load(', 1,
     'ruamel.yaml 0.18+ removed the module-level safe_load'),
    ('common/config.py',
     r'yaml\.safe_load\(', 'yaml.YAML(typ="safe").load(', 1,
     'ruamel.yaml 0.18+ removed the module-level safe_load'),
    ('common/config.py',
     r'yaml\.safe_dump\(dict\(self\), f\)', 'yaml.YAML(typ="safe").dump(dict(self), f)', 1,
     'ruamel.yaml 0.18+ removed the module-level safe_dump'),
    ('common/envs.py',
     r'^import gym$', 'import gymnasium as gym', 1,
     'gym 0.26 crashes on numpy 2 (np.bool8); the DMC path only uses gym.spaces.Box, which '
     'gymnasium provides unchanged (the Atari path, gym.envs.atari, is not supported)'),
    ('common/envs.py',
     r'np\.bool\)', 'bool)', 15,
     'numpy 1.24+ removed the np.bool alias; it always meant the builtin bool'),
    ('common/replay.py',
     r'np\.bool\)', 'bool)', 1,
     'numpy 1.24+ removed the np.bool alias; it always meant the builtin bool'),
]


def main(root):
    root = pathlib.Path(root)
    for name, pattern, repl, expected, reason in PATCHES:
        path = root / name
        text = path.read_text()
        text, count = re.subn(pattern, repl, text, flags=re.MULTILINE)
        if count != expected:
            sys.exit(f'patch.py: {name}: expected {expected} match(es) of {pattern!r}, found '
                     f'{count}. Is this an unpatched dreamerv2==2.2.0?')
        path.write_text(text)
        print(f'[patch] {name}: {count}x {reason}', file=sys.stderr)


if __name__ == '__main__':
    main(sys.argv[1])
