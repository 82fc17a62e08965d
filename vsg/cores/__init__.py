"""Registry of latent dynamics cores: name -> constructor from (config, rng). Each core is a
vsg.cores.base.Core (docs/design.md, "The core interface"), so nothing else branches on it."""
from vsg.cores.rssm import RSSM
from vsg.cores.slot import SlotCore
from vsg.cores.vsg import SVSG, VSG
from vsg.slots.settings import SlotConfig


def _kl(config):
    kl = config.kl
    return dict(kl_balance=kl.balance, kl_free=kl.free, kl_split=kl.split, kl_dyn=kl.dyn, kl_rep=kl.rep)


def _gate(config):
    gate = config.gate
    return dict(gate_prior=gate.prior, gate_scale=gate.scale, gate_free=gate.free, cell_norm=gate.cell_norm)


CORES = {
    'rssm': lambda config, rng: RSSM(rng, **config.rssm, **_kl(config), unimix=config.unimix.latents, name='core'),
    'vsg': lambda config, rng: VSG(rng, **config.rssm, **_kl(config), **_gate(config), unimix=config.unimix.latents,
                                   name='core'),
    'svsg': lambda config, rng: SVSG(rng, **config.svsg, **_kl(config), **_gate(config), name='core'),
    'slot': lambda config, rng: SlotCore(rng, SlotConfig.of(config.slots), **config.slot, **_kl(config), **_gate(config),
                                         name='core'),
}


def make(config, rng):
    if config.core not in CORES:
        raise ValueError(f"unknown core '{config.core}'; choose one of {', '.join(CORES)}")
    return CORES[config.core](config, rng)
