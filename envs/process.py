"""Step an env in a spawned worker process, so it renders away from TensorFlow and in parallel."""

import contextlib
import multiprocessing
import pickle
import signal
import sys
import traceback
import types


class ProcessEnv:
    """Same API as the env it wraps; reset() and step() also take blocking=False, which sends the
    request and returns a zero-argument callable that waits for the obs, so a driver can step
    many workers at once. `nonblocking = True` says so to code that must not import this package
    (common.driver checks it instead of the class)."""

    nonblocking = True

    def __init__(self, constructor, name):
        self._name = name
        context = multiprocessing.get_context('spawn')
        self._conn, worker_conn = context.Pipe()
        # Daemon: the worker is terminated when the parent exits; see also the EOF exit in _work.
        self._process = context.Process(
            target=_work, args=(worker_conn, constructor), daemon=True, name=f'env-{name}')
        with _main_module_hidden():
            self._process.start()
        worker_conn.close()
        self._waiting = True  # For the spaces, sent once the env is built.
        self._closed = False
        try:
            self.obs_space, self.act_space = self._receive()
        except Exception:
            self.close()
            raise

    def reset(self, blocking=True):
        return self._call('reset', (), blocking)

    def step(self, action, blocking=True):
        return self._call('step', (action,), blocking)

    def close(self):
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):  # The worker may already be gone.
            self._conn.send(('close', ()))
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._conn.close()

    def _call(self, method, args, blocking):
        if self._closed:
            raise RuntimeError(f'Env {self._name} is closed.')
        if self._waiting:
            raise RuntimeError(f'Env {self._name}: collect the previous result before a new call.')
        try:
            self._conn.send((method, args))
        except OSError:
            raise self._died() from None
        self._waiting = True
        return self._receive() if blocking else self._receive

    def _receive(self):
        if not self._waiting:
            raise RuntimeError(f'Env {self._name}: this result was already collected.')
        self._waiting = False
        try:
            ok, payload = self._conn.recv()
        except (EOFError, OSError):
            raise self._died() from None
        if not ok:
            raise pickle.loads(payload)
        return payload

    def _died(self):
        self._process.join()
        return RuntimeError(
            f'Env worker for {self._name} died (exit code {self._process.exitcode}).')


@contextlib.contextmanager
def _main_module_hidden():
    """Spawn re-runs the parent's main module in the child so that pickled references into it
    resolve; the trainer's main module imports TensorFlow, which must never reach a worker."""
    main = sys.modules['__main__']
    sys.modules['__main__'] = types.ModuleType('__main__')
    try:
        yield
    finally:
        sys.modules['__main__'] = main


def _work(conn, constructor):
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with conn:
        try:
            env = constructor()
        except Exception as error:  # The parent re-raises it from envs.make.
            conn.send((False, _pickled_error(error)))
            return
        try:
            conn.send((True, (env.obs_space, env.act_space)))
            _serve(conn, env)
        finally:
            env.close()


def _serve(conn, env):
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):  # The parent died without closing us.
            return
        if method == 'close':
            return
        try:
            conn.send((True, getattr(env, method)(*args)))
        except Exception as error:
            conn.send((False, _pickled_error(error)))


def _pickled_error(error):
    """The error itself, so the parent raises the same type and message, with the worker's
    traceback attached as a note; errors that do not pickle travel as RuntimeError."""
    error.add_note('Env worker traceback:\n' + ''.join(traceback.format_exception(error)))
    try:
        payload = pickle.dumps(error)
        pickle.loads(payload)  # Some exception classes pickle but cannot be rebuilt.
        return payload
    except Exception:
        return pickle.dumps(RuntimeError(f'{type(error).__name__}: {error}'))
