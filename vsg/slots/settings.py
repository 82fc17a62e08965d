"""The sizes that define a slot model (`SlotConfig`), taken from the config's `slots` block and saved
in its checkpoint, and the checks a config's keys cannot express on their own. No TensorFlow here, so
a bad value is reported before TensorFlow loads.
"""
import dataclasses


class SlotError(ValueError):
    """One line: a slot model cannot be built, trained or loaded as asked."""


def _power_of_two(value):
    return value >= 1 and value & (value - 1) == 0


@dataclasses.dataclass(frozen=True)
class SlotConfig:
    resolution: int        # frames are resolution x resolution x 3
    tokens: int            # the encoder's token grid side (tokens x tokens tokens)
    encoder_channels: int
    mlp_hidden: int        # hidden units of every MLP (tokens, slot update, predictor)
    num_slots: int
    slot_size: int
    iters_first: int       # slot attention iterations on a window's first frame
    iters_later: int       # and on each later frame
    predictor_heads: int
    decoder_grid: int      # the side each slot is broadcast to
    decoder_size: int      # the side the decoder's transposed convolutions reach; bilinear from there
    decoder_channels: int
    carry: bool = True     # later frames start from the predictor's step of the slots before, else from
                           # the learned slots (True for checkpoints saved before this field existed)

    CONVS = 4  # encoder convolutions: stride 2 until the token grid, stride 1 after

    @classmethod
    def of(cls, block):
        """The model's sizes from a config's `slots` block (or any mapping holding them)."""
        return cls(**{field.name: field.type(block[field.name]) for field in dataclasses.fields(cls)})

    def as_dict(self):
        return dataclasses.asdict(self)

    def shapes(self):
        """The fields that fix the variables and the frames: all but `carry`, which only says how a
        later frame starts (a part that runs the slot layers itself, as the slot core, may load either)."""
        return {key: value for key, value in self.as_dict().items() if key != 'carry'}

    @property
    def encoder_strides(self):
        halvings = (self.resolution // self.tokens).bit_length() - 1
        return (2,) * halvings + (1,) * (self.CONVS - halvings)

    @property
    def decoder_upsamplings(self):
        return (self.decoder_size // self.decoder_grid).bit_length() - 1

    def check(self):
        """Raises SlotError with one line if the sizes do not fit together."""
        ratio = self.resolution // self.tokens
        if self.resolution % self.tokens or not _power_of_two(ratio) or ratio > 2 ** self.CONVS:
            raise SlotError(f'slots.tokens={self.tokens} must divide slots.resolution={self.resolution} by a power of '
                            f'two up to {2 ** self.CONVS} (the encoder halves the frame with up to {self.CONVS} strides)')
        if not (self.decoder_grid <= self.decoder_size <= self.resolution and self.resolution % self.decoder_size == 0
                and _power_of_two(self.decoder_size // self.decoder_grid) and self.decoder_size % self.decoder_grid == 0):
            raise SlotError(f'slots.decoder_size={self.decoder_size} must lie between '
                            f'slots.decoder_grid={self.decoder_grid} and slots.resolution={self.resolution}, be '
                            'decoder_grid times a power of two and divide the resolution')
        if self.slot_size % self.predictor_heads:
            raise SlotError(f'slots.slot_size={self.slot_size} must be a multiple of '
                            f'slots.predictor_heads={self.predictor_heads}')

    def differences(self, wanted):
        """'key=saved (wanted here)' for each of `wanted` ({field: value}) that differs from these sizes."""
        unknown = sorted(set(wanted) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise SlotError(f"unknown slot model sizes {', '.join(unknown)}")
        return [f'{key}={getattr(self, key)} (wanted {value})' for key, value in wanted.items()
                if value is not None and getattr(self, key) != value]


# What each required flag names, for its one-line error.
REQUIRED = {'logdir': 'the run directory to create or resume',
            'slots.data': 'a directory of episode .npz files with frames, e.g. one written by vsg.collect'}


def parse(argv, required=tuple(REQUIRED)):
    """The config of `argv` (configs.yaml blocks and --key flags), its slot sizes checked; prints the help
    for --help and exits, or exits with one line naming what is wrong."""
    from common import config as config_lib
    try:
        config = config_lib.load(argv)
        for key in required:
            if not config.flat[key]:
                raise SlotError(f'--{key} is required ({REQUIRED[key]})')
        SlotConfig.of(config.slots).check()
    except config_lib.HelpRequested as request:
        print(request)
        raise SystemExit(0) from None
    except (config_lib.ConfigError, SlotError) as e:
        raise SystemExit(f'error: {e}') from None
    return config
