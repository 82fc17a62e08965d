"""Steps a batch of envs with a policy and hands every transition and finished episode to callbacks.

A transition is the env's observation dict plus `action`, the action that led to it (zeros on the
first step of an episode), which is the layout the replay and the world model read.
"""
import numpy as np


class Driver:

    def __init__(self, envs):
        self._envs = envs
        self._act_space = envs[0].act_space['action']
        self._on_step = []
        self._on_episode = []
        self._on_wait = []
        self._obs = None
        self._episodes = None
        self._state = None

    def on_step(self, callback):
        """`callback(transition, worker)` after every transition, including the first of an episode."""
        self._on_step.append(callback)

    def on_episode(self, callback):
        """`callback(episode, worker)` with the finished episode's stacked arrays."""
        self._on_episode.append(callback)

    def on_wait(self, callback):
        """`callback()` once per batch step, after the actions are sent and before the observations
        are collected: worker envs simulate and render meanwhile, so work done here (a train update)
        overlaps them. In-process envs have already stepped by then; the order is the same."""
        self._on_wait.append(callback)

    def reset(self):
        """Forgets the envs' current episodes, e.g. before a new policy takes over."""
        self._obs = None

    def __call__(self, policy, steps=0, episodes=0):
        """Runs `policy(obs, state) -> (actions, state)` until at least `steps` transitions (the
        first observation of an episode counts as one, as in DreamerV2) and `episodes` finished
        episodes, summed over envs. `state` is None at the start of a run. Returns both counts."""
        step, episode = 0, 0
        if self._obs is None:
            self._state = None
            self._episodes = [[] for _ in self._envs]
            self._obs = self._resolve([_request(env, 'reset') for env in self._envs])
            for i, obs in enumerate(self._obs):
                self._record(i, obs, zero_action(self._act_space))
            step += len(self._envs)
        while step < steps or episode < episodes:
            batch = {key: np.stack([obs[key] for obs in self._obs]) for key in self._obs[0]}
            actions, self._state = policy(batch, self._state)
            actions = np.asarray(actions, np.float32)
            promises = [_request(env, 'step', a) for env, a in zip(self._envs, actions)]
            for callback in self._on_wait:
                callback()
            self._obs = self._resolve(promises)
            for i, obs in enumerate(self._obs):
                self._record(i, obs, actions[i])
            step += len(self._envs)
            for i, obs in enumerate(self._obs):
                if obs['is_last']:
                    episode += 1
                    self._obs[i] = self._envs[i].reset()
                    self._record(i, self._obs[i], zero_action(self._act_space))
                    step += 1
        return step, episode

    def _record(self, worker, obs, action):
        transition = {**obs, 'action': action}
        if obs['is_first']:
            self._episodes[worker] = []
        self._episodes[worker].append(transition)
        for callback in self._on_step:
            callback(transition, worker)
        if obs['is_last']:
            episode = {k: np.stack([t[k] for t in self._episodes[worker]]) for k in transition}
            for callback in self._on_episode:
                callback(episode, worker)

    @staticmethod
    def _resolve(promises):
        return [promise() for promise in promises]


def _request(env, method, *args):
    """Starts `method` without waiting on worker envs (those with `nonblocking`, see
    envs.process.ProcessEnv), so all workers step at once; in-process envs just run it."""
    if getattr(env, 'nonblocking', False):
        return getattr(env, method)(*args, blocking=False)
    result = getattr(env, method)(*args)
    return lambda: result


def zero_action(act_space):
    """The action recorded with an episode's first obs: zeros shaped as the policy's actions, which
    for a discrete space (one with `n`, such as gymnasium's Discrete) are one-hot vectors."""
    return np.zeros((act_space.n,) if hasattr(act_space, 'n') else act_space.shape, np.float32)


def random_policy(act_space, rng):
    """Uniform actions in [-1, 1], or uniformly chosen one-hot actions for discrete spaces."""
    def policy(obs, state):
        count = len(obs['is_first'])
        if hasattr(act_space, 'n'):
            return np.eye(act_space.n, dtype=np.float32)[rng.integers(0, act_space.n, count)], state
        return rng.uniform(-1, 1, (count, *act_space.shape)).astype(np.float32), state
    return policy


def zero_policy(act_space):
    """The do-nothing baseline: the action 0 (the centre of [-1, 1]) at every step. Some tasks reward it
    well (cartpole_balance's pole starts upright), so learning curves need it beside the random policy."""
    if hasattr(act_space, 'n'):
        raise ValueError('the zero policy needs a continuous (Box) action space; this one is discrete')

    def policy(obs, state):
        return np.zeros((len(obs['is_first']), *act_space.shape), np.float32), state
    return policy
