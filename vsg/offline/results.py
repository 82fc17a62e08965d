"""The offline run's summary: results.json and results.md from the stages' records (probe.json,
decode.json, eval.json, the slot choice) and the data's returns, each return also divided by BC's on all
true actions and by the data policy's."""
import json

from common import files
from vsg.offline import data, objects


def write(run):
    """results.json and results.md from probe.json, decode.json, eval.json and the data's returns."""
    read = lambda name: json.loads(run.path(name).read_text()) if run.path(name).exists() else {}
    probes, decoded, evals = read('probe.json'), read('decode.json'), read('eval.json')
    slots = read(objects.RECORD) if objects.needed(run.cfg) else {}
    info = data.dataset_info(run.cfg.data) or {}
    data_return = float(run.data.returns.mean()) if run.data.returns is not None else None
    reference = {'bc': evals.get('bc', {}).get('mean'), 'data': data_return}
    ratio = lambda value, ref: None if value is None or ref is None or ref < 1e-8 else value / ref  # only a positive reference scales
    rows = {}
    for name, label in [('random', 'random actions'), ('bc', 'BC on all true actions')] + [
            row for m in run.labels() for row in ((f'latent_m{m}', f'latent BC + decoder, M={m}'),
                                                  (f'bc_m{m}', f'BC on the M={m} labelled trajectories'))]:
        if name in evals:
            mean = evals[name]['mean']
            rows[name] = {'label': label, 'mean': mean, 'std': evals[name]['std'],
                          'over_bc': ratio(mean, reference['bc']), 'over_data': ratio(mean, reference['data'])}
    results = {
        'task': run.env_config().task, 'data': str(run.cfg.data), 'repr': run.cfg.repr, 'policy_repr': run.seen.repr.name,
        'episodes': {'train': len(run.train_eps), 'test': len(run.test_eps)},
        'data_policy': {'policy': info.get('policy'), 'noise': info.get('noise'), 'return': data_return},
        'slots': {key: slots[key] for key in ('chosen', 'choose', 'ways', 'agreement') if key in slots},
        'probe': probes, 'decode': decoded, 'returns': rows, 'eval_episodes': run.cfg.eval.episodes,
        'discrete_act': run.cfg.discrete_act if run.data.discrete else None}
    files.write_json(run.path('results.json'), results)
    files.write_text(run.path('results.md'), markdown(results))
    print(run.path('results.md').read_text(), flush=True)


def markdown(results):
    fmt = lambda value, spec='.3f': '-' if value is None else format(value, spec)
    policy = results['data_policy']
    lines = [f"# Offline results: {results['task']}, representation {results['repr']} (the cloned policies read "
             f"{results['policy_repr']})", '',
             f"Data {results['data']}: {results['episodes']['train']} training and {results['episodes']['test']} "
             f"held-out episodes of policy {policy['policy'] or '?'}"
             + (f" (noise {policy['noise']})" if policy['noise'] else '') + f", mean return {fmt(policy['return'])}.", '']
    slots = results['slots']
    if slots:
        lines += [f"Slots kept: {slots['chosen']} (by {slots['choose']}); each way's choice: "
                  + ', '.join(f"{way} {row['chosen']}" for way, row in slots['ways'].items())
                  + '; agreement (shared share of the smaller choice): '
                  + ', '.join(f'{pair} {value:.2f}' for pair, value in slots['agreement'].items()) + '.', '']
    probes = results['probe']
    if probes:
        dims = len(probes['trained']['mse_per_dim'])
        lines += [f"Probes z -> true action, held-out MSE (lower is better): linear (ridge) per action dimension, and "
                  f"the mean of the {probes.get('knn_k', 'k')} nearest training latents (k-NN, any code):", '',
                  '| latent | linear mean | ' + ' | '.join(f'dim {i}' for i in range(dims)) + ' | k-NN mean |',
                  '|---|---|' + '---|' * dims + '---|']
        for key, label in (('trained', 'trained IDM'), ('random', 'random IDM'), ('action_variance', 'action variance')):
            row = probes[key]
            knn = f"{row['knn_mse']:.4g}" if 'knn_mse' in row else ''
            lines.append(f"| {label} | {row['mse']:.4g} | " + ' | '.join(f'{v:.4g}' for v in row['mse_per_dim']) + f' | {knn} |')
        lines.append('')
    if results['decode']:
        fitted = {'policy': "π(o)'s outputs", 'idm': "the IDM's latents"}[next(iter(results['decode'].values())).get(
            'decoder_input', 'idm')]
        lines += [f'Decoder z -> a fitted on {fitted} of the M labelled trajectories, and BC on those trajectories alone; '
                  'held-out action loss (MSE, or cross-entropy for one-hot actions):', '',
                  '| M labelled trajectories | labelled steps | decoder on IDM latents | decoder on π(o) | BC on the M |',
                  '|---|---|---|---|---|']
        for m, row in results['decode'].items():
            bc_m = f"{row['heldout_loss_bc_m']:.4g}" if 'heldout_loss_bc_m' in row else '-'
            lines.append(f"| {m} | {row['labelled_steps']} | {row['heldout_loss_idm']:.4g} | {row['heldout_loss_policy']:.4g} "
                         f"| {bc_m} |")
        lines.append('')
    if results['returns']:
        acting = {'sample': ', one-hot actions drawn from the clones\' softmax', 'argmax': ', one-hot actions by argmax',
                  None: ''}[results.get('discrete_act')]
        lines += [f"Returns over {results['eval_episodes']} episodes (mean ± std{acting}); normalised by BC on all true "
                  'actions and by the data policy:', '',
                  '| agent | return | ÷ BC | ÷ data policy |', '|---|---|---|---|',
                  f"| data policy | {fmt(policy['return'])} | | 1.000 |"]
        for row in results['returns'].values():
            lines.append(f"| {row['label']} | {row['mean']:.3f} ± {row['std']:.3f} | {fmt(row['over_bc'])} | "
                         f"{fmt(row['over_data'])} |")
    return '\n'.join(lines) + '\n'
