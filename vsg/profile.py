"""Time per part of the train step, for `python -m vsg.bench --profile`.

Each part is compiled on its own and timed on the inputs it sees in the real step (the outputs of
the parts before it, computed once): its forward pass and, where the real step differentiates
through it, its backward pass into its own variables and inputs. The parts' sum next to the whole
step shows what the step spends outside them (e.g. the optimizers' bookkeeping and what fusing the
parts into one graph saves or costs).
"""
import tensorflow as tf


def _grads(loss_fn, sources):
    """Forward and backward of loss_fn with respect to `sources` (variables and tensors)."""
    with tf.GradientTape() as tape:
        tape.watch([s for s in sources if isinstance(s, tf.Tensor)])
        loss = loss_fn()
    return tape.gradient(loss, sources)


def _summed(grads):
    return tf.add_n([tf.reduce_sum(g) for g in grads if g is not None])


def parts(agent, batch):
    """{part name: a no-argument function running that part once}."""
    wm, ac, core = agent.wm, agent.ac, agent.wm.core
    embed = wm.encoder(batch)
    post, prior = core.observe(embed, batch['action'], batch['is_first'])
    feat = core.get_feat(post)
    decoded = core.decoder_input(post)
    start = tf.nest.map_structure(lambda x: tf.reshape(x, [-1, *x.shape[2:]]), post)
    imag_feat, imag_action = ac.imagine(wm, start)
    dynamics = ac._grad == 'dynamics'  # Only then does the actor's gradient run back through imagination.

    def encoder():
        return _summed(_grads(lambda: tf.reduce_sum(wm.encoder(batch)), wm.encoder.trainable_variables))

    def observe():
        def loss():
            p, _ = core.observe(embed, batch['action'], batch['is_first'])
            return tf.reduce_sum(core.get_feat(p))
        return _summed(_grads(loss, [embed, *core.trainable_variables]))

    def decoder():
        loss = lambda: tf.add_n(list(wm.decoder_losses(decoded, batch).values()))
        return _summed(_grads(loss, [decoded, *wm.decoder.trainable_variables]))

    def heads():
        def loss():
            total = -tf.reduce_sum(wm.reward(feat).log_prob(batch['reward']))
            if wm.cont_head is not None:
                total -= tf.reduce_sum(wm.cont(feat).log_prob(1 - tf.cast(batch['is_terminal'], tf.float32)))
            return total
        heads_vars = wm.reward_head.trainable_variables + (wm.cont_head.trainable_variables if wm.cont_head else [])
        return _summed(_grads(loss, [feat, *heads_vars]))

    def kl():
        return core.loss(post, prior)[0]

    def imagination():
        if not dynamics:
            return tf.reduce_sum(ac.imagine(wm, start)[0])
        return _summed(_grads(lambda: tf.reduce_sum(ac.imagine(wm, start)[0]), ac.actor.trainable_variables))

    def actor():
        def loss():
            policy = ac.policy(tf.stop_gradient(imag_feat[:-1]))
            return -tf.reduce_sum(policy.log_prob(imag_action) + policy.entropy())
        return _summed(_grads(loss, ac.actor.trainable_variables))

    def critic():
        loss = lambda: tf.reduce_sum(tf.square(ac.critic(imag_feat[:-1])[..., 0]))
        return _summed(_grads(loss, ac.critic.trainable_variables))

    def optimizers():
        # Clipping and Adam on gradients of ones, for the three optimizers (the real step's updates).
        for opt, variables in ((agent.model_opt, wm.trainable_variables), (agent.actor_opt, ac.actor.trainable_variables),
                               (agent.critic_opt, ac.critic.trainable_variables)):
            with tf.GradientTape() as tape:
                loss = tf.add_n([tf.reduce_sum(v) for v in variables])
            opt(tape, loss, variables)
        return tf.constant(0.0)

    named = dict(encoder=encoder, observe_scan=observe, decoder=decoder, reward_cont_heads=heads, kl=kl,
                 imagination_scan=imagination, actor=actor, critic=critic, optimizers=optimizers)
    return {name: tf.function(fn) for name, fn in named.items()}


def profile(agent, batch, median_ms, repeats=5):
    """{part: median ms} for every part, plus their sum."""
    times = {}
    for name, fn in parts(agent, batch).items():
        fn()  # compile
        times[name] = round(median_ms(lambda: tf.nest.map_structure(lambda x: x.numpy(), fn()), repeats), 1)
    times['sum_of_parts'] = round(sum(times.values()), 1)
    return times
