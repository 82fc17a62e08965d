"""Tests of the background video sources (envs/backgrounds.py): video files, mixed directories, the
DAVIS train/val split and the split of the generated clips.

envs.backgrounds loads no physics engine, so these run in the pytest process; the one check that
renders DCS frames runs in a fresh process (MuJoCo cannot render next to TensorFlow).
"""

import av
import numpy as np
import pytest
from PIL import Image

from envs import backgrounds
from fresh_python import run_fresh

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def write_video(path, colours, side=32, codec=None):
    """A video file of solid-colour frames, one per colour."""
    codec = codec or ('libx264' if 'libx264' in av.codecs_available else 'mpeg4')
    with av.open(str(path), 'w') as container:
        stream = container.add_stream(codec, rate=10)
        stream.width = stream.height = side
        stream.pix_fmt = 'yuv420p'
        for colour in colours:
            frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), colour, np.uint8), format='rgb24')
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():  # Flush the encoder.
            container.mux(packet)


def write_jpegs(folder, colours):
    folder.mkdir(parents=True)
    for t, colour in enumerate(colours):
        Image.new('RGB', (16, 12), colour).save(folder / f'{t:05d}.jpg')


def test_video_file_frames_are_the_colours_written(tmp_path):
    colours = [RED, GREEN, BLUE, YELLOW]
    write_video(tmp_path / 'clip.mp4', colours)
    source = backgrounds.open_source(str(tmp_path))
    assert len(source) == 1 and source.names == ['clip'] and source.num_frames(0) == 4
    frames = source.video(0, 16)
    assert frames.shape == (4, 16, 16, 3) and frames.dtype == np.uint8
    for frame, colour in zip(frames, colours):
        np.testing.assert_allclose(frame.reshape(-1, 3).mean(0), colour, atol=8)  # yuv420p rounding
    np.testing.assert_array_equal(source.frame(0, 2, 16), frames[2])
    assert source.frame(0, 1, 8).shape == (8, 8, 3)


def test_mixed_directory_holds_folders_and_video_files(tmp_path):
    write_jpegs(tmp_path / 'a_frames', [RED, GREEN, BLUE])
    write_video(tmp_path / 'b_file.avi', [YELLOW, BLUE], codec='mpeg4')
    (tmp_path / 'notes.txt').write_text('not a video')
    source = backgrounds.open_source(tmp_path)
    assert len(source) == 2 and source.names == ['a_frames', 'b_file']
    assert [source.num_frames(video) for video in range(2)] == [3, 2]
    np.testing.assert_allclose(source.frame(1, 0, 8).reshape(-1, 3).mean(0), YELLOW, atol=8)
    np.testing.assert_allclose(source.frame(0, 2, 8).reshape(-1, 3).mean(0), BLUE, atol=8)


def write_frameless_video(path):
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('mpeg4', rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = 'yuv420p'
        container.start_encoding()


@pytest.mark.parametrize('name, write, fragment', [
    ('corrupt.mp4', lambda path: path.write_bytes(b'not a video at all' * 20), 'cannot be decoded'),
    ('empty.webm', lambda path: path.write_bytes(b''), 'cannot be decoded'),
    ('frameless.avi', write_frameless_video, 'has no frames'),
])
def test_a_video_file_that_does_not_play_is_a_one_line_error_naming_it(tmp_path, name, write, fragment):
    write_jpegs(tmp_path / 'good', [RED])
    write(tmp_path / name)
    with pytest.raises(ValueError) as caught:
        backgrounds.open_source(str(tmp_path))
    message = str(caught.value)
    assert f"'{tmp_path / name}'" in message and fragment in message and '\n' not in message, message


def test_missing_or_empty_directory_errors_mention_video_files(tmp_path):
    (tmp_path / 'empty').mkdir()
    for directory, fragment in [(tmp_path / 'missing', 'is not a directory'), (tmp_path / 'empty', 'holds no videos')]:
        with pytest.raises(ValueError, match=fragment) as caught:
            backgrounds.open_source(str(directory))
        assert 'video files (.mp4, .avi, .mov, .webm, .mkv)' in str(caught.value)


def fake_davis(root, train=('bear', 'boat'), val=('camel',), others=('dog',)):
    """A DAVIS 2017 tree: ImageSets/2017/{train,val}.txt and one JPEG frame per video."""
    (root / 'ImageSets' / '2017').mkdir(parents=True)
    (root / 'ImageSets' / '2017' / 'train.txt').write_text(''.join(f'{name}\n' for name in train))
    (root / 'ImageSets' / '2017' / 'val.txt').write_text(''.join(f'{name}\n' for name in val))
    for name in (*train, *val, *others):
        write_jpegs(root / 'JPEGImages' / '480p' / name, [RED])
    return root / 'JPEGImages' / '480p'


def test_split_plays_exactly_the_videos_davis_lists(tmp_path):
    frames = fake_davis(tmp_path / 'DAVIS')
    for directory in (frames, tmp_path / 'DAVIS'):
        assert backgrounds.open_source(str(directory), 'train').names == ['bear', 'boat']
        assert backgrounds.open_source(str(directory), 'val').names == ['camel']
        assert backgrounds.open_source(str(directory), 'all').names == ['bear', 'boat', 'camel', 'dog']
    # A list next to the videos, or in their parent folder, counts too.
    write_jpegs(tmp_path / 'mine' / 'clips' / 'x', [RED])
    write_video(tmp_path / 'mine' / 'clips' / 'y.mp4', [GREEN])
    (tmp_path / 'mine' / 'clips' / 'val.txt').write_text('y\n')
    (tmp_path / 'mine' / 'train.txt').write_text('x\n')
    assert backgrounds.open_source(str(tmp_path / 'mine' / 'clips'), 'val').names == ['y']
    assert backgrounds.open_source(str(tmp_path / 'mine' / 'clips'), 'train').names == ['x']


def test_split_errors_are_one_line_and_name_the_path(tmp_path):
    frames = fake_davis(tmp_path / 'DAVIS')
    (tmp_path / 'DAVIS' / 'ImageSets' / '2017' / 'val.txt').unlink()
    listing = tmp_path / 'DAVIS' / 'ImageSets' / '2017'
    cases = [
        (frames, 'val', f"needs DAVIS's list val.txt, found at none of {listing / 'val.txt'}"),
        (frames, 'val', 'or use background_split all'),
        (frames, 'test', "background_split must be all, train or val; got 'test'"),
        ('', 'everything', "background_split must be all, train or val; got 'everything'"),
    ]
    (listing / 'train.txt').write_text('bear\nboat\nmissing_one\n')
    cases.append((frames, 'train', f"lacks 1 of the 3 videos listed in '{listing / 'train.txt'}' (missing_one)"))
    for directory, split, fragment in cases:
        with pytest.raises(ValueError) as caught:
            backgrounds.open_source(str(directory), split)
        message = str(caught.value)
        assert fragment in message and '\n' not in message, (fragment, message)


def test_generated_train_and_val_clips_are_disjoint_and_fixed():
    every, train, val = (backgrounds.open_source('', split) for split in ('all', 'train', 'val'))
    assert len(every) == 60 and (len(train), len(val)) == (40, 20)
    assert set(train.clips).isdisjoint(val.clips) and set(train.clips) | set(val.clips) == set(every.clips)
    assert backgrounds.open_source(None, 'val').clips == val.clips  # The same clips every time...
    for source in (train, val):  # ...each the same frames as in the full set.
        for video in (0, len(source) - 1):
            np.testing.assert_array_equal(source.frame(video, 7, 16), every.frame(source.clips[video], 7, 16))
    train_frames = {train.frame(video, 0, 8).tobytes() for video in range(len(train))}
    assert not train_frames & {val.frame(video, 0, 8).tobytes() for video in range(len(val))}
    with pytest.raises(IndexError):
        val.frame(20, 0, 8)


def test_dcs_plays_a_video_file_and_loads_pyav_only_for_one(tmp_path):
    # Two solid clips of three frames, brighter at each frame, as in test_dcs's JPEG folders.
    (tmp_path / 'files').mkdir()
    for name, colour in (('red', RED), ('green', GREEN)):
        write_video(tmp_path / 'files' / f'{name}.mp4',
                    [tuple(int(c * (0.5 + 0.25 * t)) for c in colour) for t in range(3)])
    write_jpegs(tmp_path / 'jpegs' / 'clip', [RED, GREEN])
    result = run_fresh(tmp_path, f"""
        loaded = []
        for directory in ('', {str(tmp_path / 'jpegs')!r}):
            env = envs.make('dcs_cartpole_balance', seed=0, size=(16, 16), background_dir=directory, parallel=False)
            env.reset()
            env.close()
            loaded.append('av' in sys.modules)
        levels = {{}}
        for dynamic in (False, True):
            env = envs.make('dcs_reacher_easy', seed=1, size=(32, 32), distractions=['background'],
                            dynamic=dynamic, background_dir={str(tmp_path / 'files')!r},
                            background_split='all', parallel=False)
            images = [env.reset()['image']] + [env.step(np.zeros(2, np.float32))['image'] for _ in range(3)]
            images = np.array(images, np.float64)
            red = (images[..., 0] > 100) & (images[..., 1] < 60) & (images[..., 2] < 60)
            green = (images[..., 1] > 100) & (images[..., 0] < 60) & (images[..., 2] < 60)
            solid = red | green
            levels[str(dynamic)] = [float(solid.mean()), [float(np.median(image.max(-1)[mask])) if mask.any()
                                                          else 0.0 for image, mask in zip(images, solid)]]
            env.close()
        loaded.append('av' in sys.modules)
        report([loaded, levels])
    """)
    loaded, levels = result
    assert loaded == [False, False, True]
    for dynamic, (solid_fraction, brightness) in levels.items():
        assert solid_fraction > 0.3, dynamic  # The reacher's floor is clear: the clip fills the view.
        steps_changed = sum(a != b for a, b in zip(brightness, brightness[1:]))
        assert steps_changed == (3 if dynamic == 'True' else 0), (dynamic, brightness)
