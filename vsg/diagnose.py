"""What a trained world model knows about reward and actions: `python -m vsg.diagnose --logdir DIR`.

Reads the run's config, checkpoint and replay (nothing is written) and prints one JSON line:
- `open_loop_reward_mse[k]`: the model sees `--context` steps of a replay sequence, then imagines
  k = 1..horizon steps ahead from the true actions; mean squared error of its reward against the
  replayed reward, next to `reward_var` (what predicting the mean reward would score) and
  `posterior_reward_mse` (the same steps read from the posterior, with the observations).
- `open_loop_obs_mse[key][k]`: the same for every decoded vector observation key (state), the squared
  error per dimension in the decoder's target scale.
- `imagined_reward`: from the posterior after the context, the mean imagined reward over the next
  steps under the replayed actions and under the actor (as in training, `imag_horizon` steps), next
  to `replay_reward`, what the replayed actions really earned. An actor far above the replayed
  actions on data where they earned little is exploiting the model.
- `constant_action_reward`: from every posterior state of the batch, imagine `horizon` steps of one
  constant action and average the imagined reward. Continuous actions try 0, +1 and -1 in every
  dimension, and with several dimensions also +1 and -1 in one dimension at a time (`+1[i]`, the
  others 0); discrete ones try each action. Equal values mean the imagined reward ignores the action,
  so an actor trained in imagination has nothing to learn from.

- `critic`: on a longer replay batch, the critic's value at each posterior state against the
  discounted return the replayed rewards realised until the end of the sequence, bootstrapped there
  with the critic's value (`realised_return`), with their correlation. A critic far from what its own
  policy's data earned misleads the actor.
- `latent_noise`: the actor's mode action at each posterior state with only that step's latent
  resampled (`within_state_std`: std over the resamples, averaged over states) next to how much the
  same action varies across states (`across_state_std`). Near each other: the actor reads mostly
  sampling noise (a high-entropy posterior), not the state.

`--episodes own|seeded` measures a run seeded with `prefill_from` on its own episodes or on the
seeded ones alone (told apart by file name, which seeding keeps).
"""
import argparse
import json
import pathlib
import sys

import numpy as np

from common import config as config_lib
from common import episodes
from vsg import build


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--logdir', required=True, help='run directory holding config.yaml, checkpoint.npz and replay/')
    parser.add_argument('--batch', type=int, default=16, help='replay sequences to average over')
    parser.add_argument('--context', type=int, default=5, help='observed steps before the open-loop part')
    parser.add_argument('--horizon', type=int, default=15, help='imagined steps')
    parser.add_argument('--return_length', type=int, default=100, help='steps of the sequences the critic is checked on')
    parser.add_argument('--seed', type=int, default=0, help='replay sampling and latent sampling seed')
    parser.add_argument('--episodes', choices=EPISODES, default='all',
                        help="which replay episodes: all, the run's own, or those seeded from prefill_from")
    args = parser.parse_args(argv)
    for name in ('batch', 'context', 'horizon', 'return_length'):
        if getattr(args, name) < 1:
            sys.exit(f'error: --{name}={getattr(args, name)} must be at least 1')
    logdir = pathlib.Path(args.logdir).expanduser()
    for name in ('config.yaml', build.CHECKPOINT, 'replay'):
        if not (logdir / name).exists():
            sys.exit(f'error: {logdir / name} does not exist; --logdir must be a run directory written by vsg.train')
    try:
        config = config_lib.load_run(logdir)
    except config_lib.ConfigError as e:
        sys.exit(f'error: {e}')
    select = episode_filter(config, args.episodes)  # before the slow part, so a bad choice stops at once
    env = build.make_envs(config, 1, config.seed)
    try:
        agent, counters = build.make_agent(config, env[0], logdir)
    finally:
        env[0].close()
    replay = build.load_replay(config.update(seed=args.seed), logdir / 'replay', select)
    try:
        data = replay.sample(args.batch, args.context + args.horizon)
    except ValueError as e:
        sys.exit(f'error: {e}')
    agent.rng.reset_from_seed(args.seed)
    result = diagnose(agent, data, args.context, args.horizon)
    try:
        long_data = replay.sample(args.batch, args.return_length)
    except ValueError as e:
        sys.exit(f'error: --return_length {args.return_length}: {e}')
    result['critic'] = critic_check(agent, long_data, config.discount)
    print(json.dumps({'logdir': str(logdir), 'core': config.core, 'step': counters.get('step', 0),
                      'episodes': args.episodes, **result}))


EPISODES = ('all', 'own', 'seeded')


def episode_filter(config, which):
    """`select(path)` for the replay: None (all), or by whether the file's name is in `prefill_from`."""
    if which == 'all':
        return None
    if not config.prefill_from:
        sys.exit(f'error: --episodes {which} needs a run seeded with prefill_from; this one was not (use --episodes all)')
    source = pathlib.Path(config.prefill_from).expanduser()
    seeded = {path.name for path in episodes.paths(source)}
    if not seeded:
        sys.exit(f'error: --episodes {which} reads the seeded names from prefill_from {source}, which holds no episode files')
    return (lambda path: path.name in seeded) if which == 'seeded' else (lambda path: path.name not in seeded)


def diagnose(agent, data, context, horizon):
    """The two measurements of the module docstring on one replay batch [B, context + horizon]."""
    import tensorflow as tf

    if data['reward'].shape[1] < context + horizon:
        raise ValueError(f"a batch of length {data['reward'].shape[1]} is shorter than context + horizon = {context + horizon}")
    wm = agent.wm
    data = {key: tf.convert_to_tensor(value[:, :context + horizon]) for key, value in data.items()}
    reward = data['reward'].numpy().astype(np.float64)
    embed = wm.encoder(data)
    post, _ = wm.core.observe(embed, data['action'], data['is_first'])
    posterior_reward = wm.reward(wm.core.get_feat(post)).mean().numpy()
    start = {key: value[:, context - 1] for key, value in post.items()}
    prior = wm.core.imagine(data['action'][:, context:], start)
    open_loop = wm.reward(wm.core.get_feat(prior)).mean().numpy()
    future = reward[:, context:]
    actor_feat, _ = agent.ac.imagine(wm, start)
    # Every decoded vector key the same way (images are too large to say much per step as one number).
    decoded = wm.decoder(wm.core.decoder_input(prior))
    obs_mse = {key: [round(float(v), 4) for v in np.mean(np.square(
        decoded[key].numpy() - wm.decoder.target(data, key).numpy()[:, context:]), (0, 2))]
        for key in wm.decoder.keys if key not in wm.decoder.image_keys}
    result = {
        'open_loop_reward_mse': [round(float(v), 4) for v in np.mean((open_loop - future) ** 2, 0)],
        'open_loop_obs_mse': obs_mse,
        'posterior_reward_mse': round(float(np.mean((posterior_reward[:, context:] - future) ** 2)), 4),
        'reward_var': round(float(np.var(future)), 4),
        'replay_reward': round(float(np.mean(future)), 4),
        'imagined_reward': {
            'replayed_actions': round(float(np.mean(open_loop)), 4),
            'actor': round(float(tf.reduce_mean(wm.reward(actor_feat[1:]).mean())), 4)}}
    result['latent_noise'] = latent_noise(agent, data, embed, post)
    flat = {key: tf.reshape(value, [-1, *value.shape[2:]]) for key, value in post.items()}
    starts = int(np.prod(data['action'].shape[:2]))  # every step of the batch starts an imagination
    act_dim = int(data['action'].shape[-1])
    result['constant_action_reward'] = {}
    for name, action in constant_actions(act_dim, agent.discrete).items():
        actions = tf.broadcast_to(tf.constant(action, tf.float32), [starts, horizon, act_dim])
        imagined = wm.core.imagine(actions, flat)
        result['constant_action_reward'][name] = round(float(tf.reduce_mean(
            wm.reward(wm.core.get_feat(imagined)).mean())), 4)
    return result


def realised_returns(reward, cont, last_value, discount):
    """R_t = r_{t+1} + discount cont_{t+1} R_{t+1} over [B, T] (index t holds r_t, cont_t), with R_{T-1}
    the bootstrap `last_value` [B]: what the sequence's rewards earned from each state on."""
    returns = np.zeros_like(reward, dtype=np.float64)
    returns[:, -1] = last_value
    for t in range(reward.shape[1] - 2, -1, -1):
        returns[:, t] = reward[:, t + 1] + discount * cont[:, t + 1] * returns[:, t + 1]
    return returns


def critic_check(agent, data, discount):
    """The critic's values at the posterior states of `data` [B, T] against `realised_returns`."""
    import tensorflow as tf

    wm = agent.wm
    data = {key: tf.convert_to_tensor(value) for key, value in data.items()}
    post, _ = wm.core.observe(wm.encoder(data), data['action'], data['is_first'])
    value = agent.ac.value(agent.ac.critic, wm.core.get_feat(post)).mean().numpy().astype(np.float64)
    cont = 1 - data['is_terminal'].numpy().astype(np.float64)
    realised = realised_returns(data['reward'].numpy().astype(np.float64), cont, value[:, -1], discount)
    value, realised = value[:, :-1].ravel(), realised[:, :-1].ravel()
    corr = np.corrcoef(value, realised)[0, 1] if value.std() > 0 and realised.std() > 0 else float('nan')
    return {'value': round(float(value.mean()), 3), 'realised_return': round(float(realised.mean()), 3),
            'abs_error': round(float(np.abs(value - realised).mean()), 3), 'corr': round(float(corr), 3)}


def latent_noise(agent, data, embed, post, samples=8):
    """How much of the actor's mode action at a posterior state comes from sampling that step's latent;
    `embed` and `post` are the encoder's output and the posterior on `data` [B, T]."""
    import tensorflow as tf

    wm = agent.wm
    flat = lambda x: tf.reshape(x, [-1, *x.shape[2:]])  # steps 1..T-1 of every sequence, one batch
    prev = {key: flat(value[:, :-1]) for key, value in post.items()}
    step = [flat(data['action'][:, 1:]), flat(embed[:, 1:]), flat(data['is_first'][:, 1:])]
    actions = np.stack([
        agent.ac.policy(wm.core.get_feat(wm.core.obs_step(prev, *step, sample=True)[0])).mode().numpy()
        for _ in range(samples)])                                        # [samples, states, act]
    return {'within_state_std': round(float(actions.std(0).mean()), 4),
            'across_state_std': round(float(actions.mean(0).std(0).mean()), 4)}


def constant_actions(act_dim, discrete):
    """{label: action vector}: each one-hot action, or 0, +1 and -1 in every dimension and, given
    several dimensions, +1 and -1 in each one alone."""
    if discrete:
        return {f'action_{i}': np.eye(act_dim, dtype=np.float32)[i] for i in range(act_dim)}
    actions = {label: np.full(act_dim, value, np.float32) for label, value in (('0', 0.0), ('+1', 1.0), ('-1', -1.0))}
    if act_dim > 1:
        for i in range(act_dim):
            for label, value in (('+1', 1.0), ('-1', -1.0)):
                actions[f'{label}[{i}]'] = value * np.eye(act_dim, dtype=np.float32)[i]
    return actions


if __name__ == '__main__':
    main()
