"""Object slots: a SAVi-style video slot autoencoder pre-trained on episode frames (`python -m vsg.slots`,
docs/design.md "Object slots"). Other parts load a trained one by name with `load`. Importing this
package loads no TensorFlow."""


def load(path_or_logdir, **wanted):
    """(model, SlotConfig) of LOGDIR/slots.npz or a checkpoint file; see vsg.slots.store.load."""
    from vsg.slots import store
    return store.load(path_or_logdir, **wanted)
