"""Few-label decoding: a small MLP z -> a fitted on the true actions of M labelled trajectories and the
latents z of their steps (π(o)'s outputs or the IDM's, offline.decode.input), which turns the latent
policy into an agent, a = decoder(π(o))."""
from common import nets
from vsg.offline import bc


def decoder(action_size, cfg):
    """cfg: the offline.decode block."""
    return nets.MLP(cfg.layers, cfg.units, 'elu', action_size, name='decoder')


def label_counts(wanted, available):
    """The M of `wanted` capped by the `available` labelled trajectories, without repeats, ascending."""
    return sorted({min(int(m), available) for m in wanted if int(m) >= 1})


def decode_loss(discrete):
    def loss_fn(model, z, actions):
        output = model(z)
        loss = bc.action_loss(output, actions, discrete)
        return loss, {'action_loss': loss}
    return loss_fn
