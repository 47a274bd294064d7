"""experiments/mismatched_mel.py: what each case's mel describes; a run's records."""

import numpy as np

import subscale
from configs import demo_subscale
from experiments import common
from experiments import mismatched_mel
from subscale import audio
from subscale import input_pipeline

CLIP = f"{input_pipeline.DEMO_DIR}/train/it_IT_m_Carlo/queue-thankyou.flac"
FRAMES = 20


MEL = audio.MelConfig.from_config(demo_subscale.get_config().data)


def _vocoder():
    config = demo_subscale.get_config()
    common.shrink_to_tiny(config)
    return subscale.create(config, seed=0)


def _clips(count):
    """`count` clips of FRAMES frames cut from one utterance."""
    hop = MEL.hop_length
    wave = audio.load(CLIP, MEL.sample_rate)
    out = []
    for i in range(count):
        samples = wave[(i + 1) * FRAMES * hop : (i + 2) * FRAMES * hop]
        out.append((f"part{i}", audio.to_int16(samples), audio.mel(samples, MEL)))
    return out


def test_a_shifted_mel_is_the_mel_of_the_scaled_audio():
    clip_list = _clips(3)
    by_case = mismatched_mel.cases(clip_list, [2.0, -1.0])
    assert list(by_case) == ["own", "+2dB", "-1dB", "other"]
    for case, shift in (("+2dB", 2.0), ("-1dB", -1.0)):
        for (mel, (_, samples, described)), (_, _, own) in zip(
            by_case[case], clip_list, strict=True
        ):
            assert mel is described
            np.testing.assert_allclose(mel - own, shift * mismatched_mel.DB, atol=1e-6)
            # The mel is what the scaled audio gives, wherever it is above the floor.
            # (up to the rounding of the scaled audio to int16).
            real = audio.mel(audio.to_float(samples), MEL)
            loud = own > np.log(audio.MEL_MAGNITUDE_FLOOR) + 2
            np.testing.assert_allclose(real[loud], mel[loud], atol=0.05)
    # `other`: clip i gets the mel of clip i + n/2, which describes that clip.
    names = [clip[0] for _, clip in by_case["other"]]
    assert names == ["part1", "part2", "part0"]


def test_measure_gives_one_record_per_case():
    vocoder = _vocoder()
    clip_list = _clips(2)
    records = mismatched_mel.measure(vocoder, clip_list, [1.0])
    assert [r["case"] for r in records] == ["own", "+1dB", "other"]
    own = records[0]
    assert own["gain_db"] == 0.0 and own["clips"] == 2
    # The own mel's NLL is the model's log_prob of the clips.
    bits = [-vocoder.log_prob(s, m) / np.log(2.0) for _, s, m in clip_list]
    np.testing.assert_allclose(
        own["nll_bits"], np.mean(np.concatenate(bits)), rtol=1e-6
    )
    for r in records:
        assert 0 < r["nll_bits"] <= r["worst_bits"] and "log_mel_db" in r
    text = mismatched_mel.markdown(records, "cmd", clip_list, "tiny", 16000)
    assert "| +1dB |" in text and "| other |" in text
