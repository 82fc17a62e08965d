"""The offline stages over one data directory and one logdir:

  lapo    latent action model (IDM + FDM) on the training episodes       -> lapo.npz (lapo_init.npz: its init)
  probe   ridge and k-NN probes z -> true action, trained vs random IDM -> probe.json
  bc      latent policy π(o) -> z on IDM latents; π_bc(o) -> a on all true actions -> bc_latent.npz, bc_action.npz
  decode  per M labelled trajectories: decoder z -> a (on π(o)'s outputs or the IDM's latents), and the
          few-label baseline π_bc(o) -> a on those trajectories alone  -> decoder_m{M}.npz, bc_m{M}.npz, decode.json
  eval    returns in the env: random, BC, per M decoder(π(o)) and BC_M  -> eval.json, results.md, results.json
  all     the five in order

Each stage loads the earlier stages' checkpoints by name and resumes after a kill; the training
episodes are the same seeded split throughout, the held-out ones score the probe and the decoders.
The latent action model reads offline.repr; the cloned policies read offline.bc.repr (by default the
same, but the frames for slot representations). With a slot representation (slots or masks) in either
place every stage first runs the slot model over the episodes and chooses its slots (objects.py ->
slots_choice.json).
"""
import json
import pathlib
import sys

import keras
import numpy as np
import tensorflow as tf

from common import checkpoint, files
from vsg.offline import bc, data, decode, loop, objects, probe, results, rollout
from vsg.offline.lapo import IMAGE_ENCODERS, LatentActionModel
from vsg.offline.loop import StageError

STAGES = ('lapo', 'probe', 'bc', 'decode', 'eval')
LATENTS = ('vq', 'continuous', 'gaussian')
FDMS = ('unet', 'vector')
DECODER_INPUTS = ('policy', 'idm')  # what the decoder is fitted on: π(o)'s outputs or the IDM's latents
EVAL_SEED = 20_000  # eval envs are seeded seed + this, as in vsg.evaluate


def check(config):
    """Offline settings a run cannot start with, as a StageError (one line)."""
    cfg = config.offline
    if cfg.stage not in (*STAGES, 'all'):
        raise StageError(f"offline.stage={cfg.stage!r} is not allowed; choose one of {', '.join(STAGES)}, all")
    if not cfg.data:
        raise StageError('--offline.data is required: a directory of episode .npz files (vsg.collect writes one)')
    data.check_representation(cfg.repr)
    if cfg.bc.repr and cfg.bc.repr not in data.REPRESENTATIONS:
        raise StageError(f"offline.bc.repr={cfg.bc.repr!r} is not allowed; choose '' (as offline.repr, the frames for "
                         f"slot representations) or one of {', '.join(data.REPRESENTATIONS)}")
    objects.check(cfg)
    if cfg.lapo.latent not in LATENTS:
        raise StageError(f"offline.lapo.latent={cfg.lapo.latent!r} is not allowed; choose one of {', '.join(LATENTS)}")
    if cfg.bc.encoder not in IMAGE_ENCODERS:
        raise StageError(f"offline.bc.encoder={cfg.bc.encoder!r} is not allowed; choose one of {', '.join(IMAGE_ENCODERS)}")
    if cfg.discrete_act not in bc.DISCRETE_ACTS:
        raise StageError(f"offline.discrete_act={cfg.discrete_act!r} is not allowed; choose one of "
                         f"{', '.join(bc.DISCRETE_ACTS)}")
    if cfg.lapo.fdm not in FDMS:
        raise StageError(f"offline.lapo.fdm={cfg.lapo.fdm!r} is not allowed; choose one of {', '.join(FDMS)}")
    if not 0 < cfg.test_fraction < 1:
        raise StageError(f'offline.test_fraction={cfg.test_fraction} must lie in (0, 1)')
    positive = {'frame_stack': cfg.frame_stack, 'batch_size': cfg.batch_size, 'log_every': cfg.log_every,
                'save_every': cfg.save_every, 'lapo.steps': cfg.lapo.steps, 'lapo.offset': cfg.lapo.offset,
                'lapo.latent_size': cfg.lapo.latent_size, 'lapo.groups': cfg.lapo.groups, 'lapo.codes': cfg.lapo.codes,
                'bc.steps': cfg.bc.steps, 'decode.steps': cfg.decode.steps, 'eval.episodes': cfg.eval.episodes,
                'eval.workers': cfg.eval.workers, 'probe.max_steps': cfg.probe.max_steps}
    for key, value in positive.items():
        if value < 1:
            raise StageError(f'offline.{key}={value} must be a positive integer')
    for key in ('commitment', 'kl', 'kl_free'):
        if cfg.lapo[key] < 0:
            raise StageError(f'offline.lapo.{key}={cfg.lapo[key]} must be at least 0')
    if cfg.lapo.latent == 'vq' and cfg.lapo.latent_size % cfg.lapo.groups:
        raise StageError(f'offline.lapo.latent_size={cfg.lapo.latent_size} must be a multiple of offline.lapo.groups={cfg.lapo.groups}')
    if cfg.decode.input not in DECODER_INPUTS:
        raise StageError(f"offline.decode.input={cfg.decode.input!r} is not allowed; choose one of {', '.join(DECODER_INPUTS)}")
    if not cfg.decode.labels or min(cfg.decode.labels) < 1:
        raise StageError(f'offline.decode.labels={list(cfg.decode.labels)} must be one or more positive counts')


class Run:
    """The config, logdir, data and split every stage shares."""

    def __init__(self, config):
        self.config, self.cfg = config, config.offline
        self.logdir = pathlib.Path(config.logdir).expanduser()
        # Only the probes need true actions, so the lapo stage alone runs on action-free episodes.
        episodes, names = data.load_episodes(self.cfg.data, ['action'] if self.cfg.stage != 'lapo' else [])
        # A slot representation first runs the slot model over the episodes and chooses its slots.
        self._live_slots, chosen = (objects.prepare(self.cfg, episodes, config.seed, self.logdir)
                                    if objects.needed(self.cfg) else (None, ()))
        # What the latent action model reads, and what the cloned policies read (offline.bc.repr).
        self.data = data.Dataset(episodes, names, self.cfg.repr, self.cfg.frame_stack, chosen)
        model_repr, policy_repr = objects.representations(self.cfg)
        self.seen = self.data if policy_repr == model_repr else data.Dataset(
            episodes, names, policy_repr, self.cfg.frame_stack, chosen)
        self.train_eps, self.test_eps = data.split(self.data.num_episodes, self.cfg.test_fraction, config.seed)
        self.action_size = None if self.data.actions is None else self.data.actions.shape[-1]
        self.k = data.label_offset(self.cfg.lapo.offset, self.cfg.lapo.offset_sampled)
        # The steps with an action after them: what the probe, BC and decoders learn from.
        self.train_steps = self.data.transitions(self.train_eps)
        self.test_steps = self.data.transitions(self.test_eps)
        if not len(self.train_steps) or not len(self.test_steps):
            raise StageError('every episode of the training or held-out split has a single step')
        self.logger = loop.make_logger(self.logdir)
        self._lapo = self._labeller = None

    def path(self, name):
        return self.logdir / name

    def live_convert(self):
        """The policies' representation of batches of live observations, for one rollout (a slot model
        keeps each env's slots from step to step)."""
        convert = self.seen.repr.convert
        if self.seen.repr.name not in data.SLOT_REPRESENTATIONS:
            return convert
        add_slots = self._live_slots()
        return lambda obs: convert(add_slots(obs))

    def seed_nets(self, offset=0):
        keras.utils.set_random_seed(self.config.seed + offset)

    def lapo_model(self):
        """The latent action model, built once per run (seeded, so its init is the same in every process)."""
        if self._lapo is None:
            self.seed_nets()
            self._lapo = LatentActionModel(self.data.repr.kind, self.data.inputs.shape[1:], self.cfg.net, self.cfg.lapo)
            steps = self.train_steps[:1]
            self._lapo(self.data.stacked(steps), self.data.future(steps, 1))  # builds its variables
        return self._lapo

    def idm(self, name='lapo'):
        """The IDM with the weights of the lapo stage's checkpoint (or of its init, name='lapo_init')."""
        model = self.lapo_model()
        if name == 'lapo':
            loop.require_done(self.logdir, 'lapo', self.cfg.lapo.steps, 'lapo')
        loop.restore(self.logdir, name, model.idm.variables, 'lapo/idm/', 'lapo')
        return model.idm

    def latents(self, idm, steps, batch=256):
        """z_t = IDM(o_t, o_{t+k}) of `steps`, k the labelling offset; `idm` is always lapo_model().idm."""
        if self._labeller is None:
            example = (self.data.stacked(steps[:1]), self.data.future(steps[:1], 1))
            self._labeller = compiled(lambda stacked, future: idm(stacked, future)[0], *example)
        label = self._labeller
        chunks = [label(self.data.stacked(part), self.data.future(part, self.k)).numpy()
                  for part in np.array_split(steps, max(1, int(np.ceil(len(steps) / batch))))]
        return np.concatenate(chunks)

    def policy(self, name, out):
        self.seed_nets()
        net = bc.Policy(self.seen.repr.kind, out, self.cfg.net, self.cfg.bc.encoder, name=name)
        net(self.seen.stacked(self.train_steps[:1]))
        return net

    def decoder(self, labels):
        self.seed_nets(labels)
        net = decode.decoder(self.action_size, self.cfg.decode)
        net(np.zeros((1, self.cfg.lapo.latent_size), np.float32))
        return net

    def batches(self, make_batch, offset=0):
        return loop.batch_source(make_batch, np.random.default_rng(self.config.seed + offset))

    def train(self, name, model, opt, loss_fn, make_batch, steps, evaluate=None, offset=0, inputs=()):
        """Trains `model` under the checkpoint name `name`; `inputs`: the names of the checkpoints it learns from."""
        update = bc.make_update(model, opt, loss_fn)
        loop.train(name, self.logdir, [*model.variables, *opt.variables], update, self.batches(make_batch, offset),
                   steps, self.cfg.save_every, self.cfg.log_every, self.logger, evaluate,
                   {source: loop.updates(self.logdir, source) for source in inputs})

    def labels(self):
        """The label counts M, capped by the training episodes."""
        return decode.label_counts(self.cfg.decode.labels, len(self.train_eps))

    def env_config(self):
        """The env to evaluate in: the dataset's task and settings (DIR/dataset.json) unless
        offline.env_from_data is false or the directory has none."""
        recorded = data.recorded_env(self.cfg.data)
        if recorded is None or not self.cfg.env_from_data:
            return self.config
        return self.config.update(recorded)


def compiled(fn, *examples):
    """tf.function of `fn` taking arrays shaped and typed as `examples` with any batch size (one trace)."""
    signature = [tf.TensorSpec([None, *np.shape(x)[1:]], tf.as_dtype(np.asarray(x).dtype)) for x in examples]
    return tf.function(fn, input_signature=signature)


def subsample(steps, count, seed):
    if len(steps) <= count:
        return steps
    return np.sort(np.random.default_rng(seed).choice(steps, count, replace=False))


def run_lapo(run):
    cfg, lapo_cfg = run.cfg, run.cfg.lapo
    model = run.lapo_model()
    if not run.path('lapo_init.npz').exists():  # the random IDM the probe compares with
        checkpoint.save(run.path('lapo_init.npz'), model.variables, {})
    max_k = lapo_cfg.offset
    windows = run.data.transitions(run.train_eps, 1 if lapo_cfg.offset_sampled else max_k)
    held_out = run.data.transitions(run.test_eps, 1 if lapo_cfg.offset_sampled else max_k)
    if not len(windows) or not len(held_out):
        raise StageError(f'no training or held-out episode is longer than offline.lapo.offset={max_k} steps')

    def make_batch(rng):
        chosen = rng.choice(windows, cfg.batch_size)
        k = data.offsets_for(len(chosen), max_k, lapo_cfg.offset_sampled, rng)
        return run.data.stacked(chosen), run.data.future(chosen, k)

    probe_train = subsample(run.train_steps, cfg.probe.max_steps, run.config.seed)
    probe_test = subsample(run.test_steps, cfg.probe.max_steps, run.config.seed + 1)
    chosen = subsample(held_out, 256, run.config.seed + 2)
    k = data.offsets_for(len(chosen), max_k, lapo_cfg.offset_sampled, np.random.default_rng(run.config.seed + 2))
    validation = run.data.stacked(chosen), run.data.future(chosen, k)
    validate = compiled(lambda stacked, future: model.loss(stacked, future, training=False)[1]['reconstruction'],
                        *validation)

    def evaluate():
        z_train, z_test = run.latents(model.idm, probe_train), run.latents(model.idm, probe_test)
        a_train, a_test = run.data.next_actions(probe_train), run.data.next_actions(probe_test)
        mse, variance = probe.score(z_train, a_train, z_test, a_test, cfg.probe.ridge)
        return {'heldout_reconstruction': validate(*validation), 'probe_mse': mse.mean(),
                'probe_mse_over_var': mse.mean() / max(variance.mean(), 1e-12),
                'probe_knn_mse': probe.knn_score(z_train, a_train, z_test, a_test, cfg.probe.knn).mean()}

    opt = bc.optimizer('lapo_opt', cfg.net)
    loss_fn = lambda model, stacked, future: model.loss(stacked, future)
    run.train('lapo', model, opt, loss_fn, make_batch, lapo_cfg.steps,
              evaluate if run.action_size else None)


def run_probe(run):
    cfg = run.cfg
    steps_train = subsample(run.train_steps, cfg.probe.max_steps, run.config.seed)
    steps_test = subsample(run.test_steps, cfg.probe.max_steps, run.config.seed + 1)
    a_train, a_test = run.data.next_actions(steps_train), run.data.next_actions(steps_test)
    result = {'transitions': {'train': len(steps_train), 'test': len(steps_test)}}
    for name, checkpoint_name in (('trained', 'lapo'), ('random', 'lapo_init')):
        idm = run.idm(checkpoint_name)
        z_train, z_test = run.latents(idm, steps_train), run.latents(idm, steps_test)
        mse, variance = probe.score(z_train, a_train, z_test, a_test, cfg.probe.ridge)
        knn = probe.knn_score(z_train, a_train, z_test, a_test, cfg.probe.knn)
        result[name] = {'mse': float(mse.mean()), 'mse_per_dim': mse.tolist(),
                        'knn_mse': float(knn.mean()), 'knn_mse_per_dim': knn.tolist()}
    result['action_variance'] = {'mse': float(variance.mean()), 'mse_per_dim': variance.tolist()}
    result['knn_k'] = cfg.probe.knn
    files.write_json(run.path('probe.json'), result)
    logged = {f'probe/{name}_mse': result[name]['mse'] for name in ('trained', 'random', 'action_variance')}
    logged.update({f'probe/{name}_knn_mse': result[name]['knn_mse'] for name in ('trained', 'random')})
    loop.log(run.logger, logged)
    print(f"probe: held-out MSE trained IDM {result['trained']['mse']:.4g} (k-NN {result['trained']['knn_mse']:.4g}) "
          f"| random IDM {result['random']['mse']:.4g} (k-NN {result['random']['knn_mse']:.4g}) "
          f"| action variance {result['action_variance']['mse']:.4g}", flush=True)


def run_bc(run):
    cfg = run.cfg
    z = run.latents(run.idm(), run.train_steps)
    index = {step: i for i, step in enumerate(run.train_steps)}
    latent_policy = run.policy('latent_policy', cfg.lapo.latent_size)

    def latent_batch(rng):
        chosen = rng.choice(run.train_steps, cfg.batch_size)
        return run.seen.stacked(chosen), z[[index[step] for step in chosen]]
    run.train('bc_latent', latent_policy, bc.optimizer('bc_latent_opt', cfg.net), bc.latent_loss, latent_batch,
              cfg.bc.steps, offset=1, inputs=['lapo'])

    train_clone(run, 'bc_action', run.train_steps, offset=2)


def train_clone(run, name, steps, offset):
    """π_bc(o) -> a on the true actions of `steps`, under the checkpoint `name`; returns the net."""
    clone = run.policy('action_policy', run.action_size)

    def batch(rng):
        chosen = rng.choice(steps, run.cfg.batch_size)
        return run.seen.stacked(chosen), run.data.next_actions(chosen)
    run.train(name, clone, bc.optimizer('bc_action_opt', run.cfg.net), bc.behaviour_loss(run.data.discrete), batch,
              run.cfg.bc.steps, offset=offset)
    return clone


def run_decode(run):
    cfg = run.cfg
    idm = run.idm()
    latent_policy = load_policy(run, 'latent_policy', cfg.lapo.latent_size)
    z_test = run.latents(idm, run.test_steps)
    predicted_test = _outputs(latent_policy, run.seen.stacked, run.test_steps)
    a_test = run.data.next_actions(run.test_steps)
    # The agent decodes π(o)'s outputs, which regress the IDM's latents towards their mean; a decoder fitted
    # on the latents themselves (LAPO's) read them far worse on the gridworld (docs/results/offline.md).
    on_policy = cfg.decode.input == 'policy'
    scores = {}
    for m in run.labels():
        steps = run.data.transitions(run.train_eps[:m])
        z = _outputs(latent_policy, run.seen.stacked, steps) if on_policy else run.latents(idm, steps)
        actions = run.data.next_actions(steps)
        model = run.decoder(m)

        def make_batch(rng):
            chosen = rng.integers(0, len(steps), cfg.batch_size)
            return z[chosen], actions[chosen]
        run.train(f'decoder_m{m}', model, bc.optimizer('decoder_opt', cfg.net), decode.decode_loss(run.data.discrete),
                  make_batch, cfg.decode.steps, offset=100 + m, inputs=['lapo', 'bc_latent'] if on_policy else ['lapo'])
        # The baseline the latents must beat: the same clone as π_bc, on these M trajectories' actions only.
        clone = train_clone(run, f'bc_m{m}', steps, offset=200 + m)
        scores[m] = {
            'labelled_steps': int(len(steps)),
            'decoder_input': cfg.decode.input,
            'heldout_loss_idm': _loss(model(z_test), a_test, run.data.discrete),
            'heldout_loss_policy': _loss(model(predicted_test), a_test, run.data.discrete),
            'heldout_loss_bc_m': _loss(_outputs(clone, run.seen.stacked, run.test_steps), a_test, run.data.discrete)}
    files.write_json(run.path('decode.json'), {str(m): value for m, value in scores.items()})
    loop.log(run.logger, {f'decode/m{m}_{key}': value for m, row in scores.items() for key, value in row.items()
                          if key != 'decoder_input'})


def run_eval(run):
    cfg = run.cfg
    env_config = run.env_config()
    seed = run.config.seed + EVAL_SEED
    path = run.path('eval.json')
    done = json.loads(path.read_text()) if path.exists() else {}
    discrete = run.data.discrete
    # Each agent with the checkpoints it acts with; a result made from other ones is redone.
    agents = {'random': (lambda: 'random', []),
              'bc': (lambda: _agent(run, seed, load_policy(run, 'action_policy', run.action_size)), ['bc_action'])}
    for m in run.labels():
        agents[f'latent_m{m}'] = (lambda m=m: _agent(run, seed, load_policy(run, 'latent_policy', cfg.lapo.latent_size),
                                                     load_decoder(run, m)), ['lapo', 'bc_latent', f'decoder_m{m}'])
        agents[f'bc_m{m}'] = (lambda m=m: _agent(run, seed, load_policy(run, 'action_policy', run.action_size, f'bc_m{m}', 'decode')),
                              [f'bc_m{m}'])
    # How one-hot actions are picked changes the returns, so a result acted otherwise is redone.
    acting = cfg.discrete_act if discrete else 'clip'
    how = lambda name: {'acting': acting, **({'decoder_input': cfg.decode.input} if name.startswith('latent') else {})}
    print(f'eval: {cfg.eval.episodes} episodes each on {env_config.task} for {", ".join(agents)}', flush=True)
    for name, (make, sources) in agents.items():
        sources = {source: loop.updates(run.logdir, source) for source in sources}
        if name in done and len(done[name]['returns']) == cfg.eval.episodes and done[name].get('sources') == sources \
                and (name == 'random' or all(done[name].get(key) == value for key, value in how(name).items())):
            continue
        returns = rollout.returns(env_config, make(), cfg.eval.episodes, cfg.eval.workers, seed,
                                  (run.action_size, discrete))
        done[name] = {'returns': returns, 'mean': float(np.mean(returns)), 'std': float(np.std(returns)), 'sources': sources,
                      **how(name)}
        files.write_json(path, done)
        loop.log(run.logger, {f'eval/{name}_return': done[name]['mean']})
        print(f"eval: {name} return {done[name]['mean']:.3f} ± {done[name]['std']:.3f}", flush=True)
    results.write(run)


def load_policy(run, name, out, source=None, stage='bc'):
    """The policy `name` (latent_policy or action_policy) from its checkpoint: the bc stage's, or `source`
    made by `stage` (bc_m{M}: a few-label clone of the decode stage)."""
    net = run.policy(name, out)
    source = source or {'latent_policy': 'bc_latent', 'action_policy': 'bc_action'}[name]
    loop.require_done(run.logdir, source, run.cfg.bc.steps, stage)
    loop.restore(run.logdir, source, net.variables, f'{name}/', stage)
    return net


def load_decoder(run, m):
    net = run.decoder(m)
    loop.require_done(run.logdir, f'decoder_m{m}', run.cfg.decode.steps, 'decode')
    loop.restore(run.logdir, f'decoder_m{m}', net.variables, 'decoder/', 'decode')
    return net


def _agent(run, seed, policy, decoder=None):
    """A driver policy from `policy` (and `decoder`); one-hot actions drawn with a generator seeded `seed`
    unless offline.discrete_act is argmax."""
    discrete = run.data.discrete
    draws = tf.random.Generator.from_seed(seed) if discrete and run.cfg.discrete_act == 'sample' else None

    def act(stacked):
        output = policy(stacked)
        output = decoder(output) if decoder is not None else output
        return bc.to_action(output, discrete, None if draws is None else draws.make_seeds(1)[:, 0])
    act = compiled(act, run.seen.stacked(run.train_steps[:1]))
    return rollout.stacking_policy(lambda stacked: act(stacked).numpy(), run.live_convert(), run.cfg.frame_stack)


def _outputs(net, stacked, steps, batch=256):
    fn = compiled(net, stacked(steps[:1]))
    parts = np.array_split(steps, max(1, int(np.ceil(len(steps) / batch))))
    return np.concatenate([fn(stacked(part)).numpy() for part in parts])


def _loss(output, actions, discrete):
    return float(bc.action_loss(tf.convert_to_tensor(output), tf.convert_to_tensor(actions), discrete))


RUNNERS = {'lapo': run_lapo, 'probe': run_probe, 'bc': run_bc, 'decode': run_decode, 'eval': run_eval}


def run(config):
    check(config)
    logdir = pathlib.Path(config.logdir).expanduser()
    logdir.mkdir(parents=True, exist_ok=True)
    config.save(logdir / 'config.yaml')
    state = Run(config)
    actions = 'no actions' if state.action_size is None else (
        f"{state.action_size} {'one-hot' if state.data.discrete else 'continuous'} action dims")
    print(f'offline: {state.data.num_episodes} episodes ({len(state.train_eps)} training, {len(state.test_eps)} held out) '
          f'from {config.offline.data}, {len(state.data.inputs):,} steps, {actions}', flush=True)
    try:
        for stage in STAGES if config.offline.stage == 'all' else (config.offline.stage,):
            RUNNERS[stage](state)
    finally:
        state.logger.close()


def main(argv=None):
    from vsg import build
    config = build.parse(sys.argv[1:] if argv is None else argv)
    try:
        run(config)
    except (StageError, data.DataError) as e:
        sys.exit(f'error: {e}')
