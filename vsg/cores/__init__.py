"""Registry of latent dynamics cores. Each core implements the interface of DESIGN.md §4
(initial, observe, imagine, obs_step, img_step, get_feat, loss), so nothing else branches on it."""
from vsg.cores.rssm import RSSM


def _rssm(config, rng):
    return RSSM(
        rng, **config.rssm, kl_balance=config.kl.balance, kl_free=config.kl.free, name='core')


CORES = {'rssm': _rssm}


def make(config, rng):
    if config.core not in CORES:
        raise ValueError(f"unknown core '{config.core}'; choose one of {', '.join(CORES)}")
    return CORES[config.core](config, rng)
