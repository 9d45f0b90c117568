"""Writes tests/fixtures/stylegan1/: a small StyleGAN (2018) network made and pickled by the
official TensorFlow code, as the release pickles are, and that code's outputs for it.

A tool run by hand, outside the test suite (pytest never runs it), in a scratch checkout of
NVlabs/stylegan (commit 1e0d5c7, run with tensorflow-cpu 2.21 on the CPU) patched in two places:
its `import tensorflow as tf` lines read `import tensorflow.compat.v1 as tf`, and G_synthesis's
noise shape `[1, use_noise, ...]` reads `[1, int(use_noise), ...]` (TF 2 refuses a bool as a
dimension). Nothing of that code is part of stylejax:

    python tests/scripts/stylegan1_fixtures.py --official /work/scratch/stylegan1 \
        --out tests/fixtures/stylegan1

Resolution 128 so that the official fused up/down convs (128x128 and up) are exercised; tiny
channel counts keep the files small. Every variable, trainable or not, is set to random values
(the official init leaves biases, noise weights and styles at zero, which would test nothing).
"""

import argparse
import os
import pickle
import sys

import numpy as np

NETWORK = dict(num_channels=3, resolution=128, fmap_base=256, fmap_max=16, latent_size=16,
               dlatent_size=16, mapping_fmaps=16)
SOURCE_OMITTED = "# the official networks_stylegan.py, left out of this fixture"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--official", required=True, help="the scratch NVlabs/stylegan checkout")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.official)
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    import dnnlib.tflib as tflib

    tflib.init_tf({"rnd.np_random_seed": 1, "rnd.tf_random_seed": 1, "allow_soft_placement": True})
    G = tflib.Network("G", func_name="training.networks_stylegan.G_style", **NETWORK)
    D = tflib.Network("D", func_name="training.networks_stylegan.D_basic", **NETWORK)
    Gs = G.clone("Gs")
    rng = np.random.RandomState(0)
    for net in (G, D, Gs):
        values = {}
        for name, var in net.vars.items():
            shape = var.shape.as_list()
            if name.endswith("lod"):
                continue
            scale = 1.0 if "noise" in name.split("/")[-1] or "weight" in name else 0.3
            if name.startswith("G_mapping/"):
                scale /= 0.01  # stored divided by the mapping's lr multiplier
            values[var] = rng.normal(0, scale, shape).astype(np.float32)
        tflib.set_vars(values)

    # The release pickles carry the official source in every network's state; the fixture keeps
    # the state's structure but not that text (stylejax never reads it).
    getstate = tflib.Network.__getstate__
    tflib.Network.__getstate__ = lambda net: dict(getstate(net), build_module_src=SOURCE_OMITTED)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tiny.pkl"), "wb") as f:
        pickle.dump((G, D, Gs), f, protocol=4)  # the releases: Python 3.6, protocol 4

    z = rng.normal(size=(2, NETWORK["latent_size"])).astype(np.float32)
    out = {"z": z}
    out["Gs/ws"] = Gs.components.mapping.run(z, None)
    out["G/ws"] = G.components.mapping.run(z, None)
    fixed = dict(randomize_noise=False, truncation_psi=1.0, truncation_cutoff=None)
    out["Gs/img_psi1"] = Gs.run(z, None, **fixed)
    out["Gs/img_psi0.7_cutoff8"] = Gs.run(z[:1], None, **dict(fixed, truncation_psi=0.7,
                                                                truncation_cutoff=8))
    tflib.set_vars({Gs.find_var("lod"): np.float32(1.5)})
    out["Gs/img_psi1_lod1.5"] = Gs.run(z[1:], None, **fixed)
    tflib.set_vars({Gs.find_var("lod"): np.float32(0)})
    images = out["Gs/img_psi1"]
    out["D/scores"] = D.run(images, np.zeros((2, 0), np.float32))
    tflib.set_vars({D.find_var("lod"): np.float32(1.3)})
    out["D/scores_lod1.3"] = D.run(images, np.zeros((2, 0), np.float32))
    np.savez_compressed(os.path.join(args.out, "tiny_expected.npz"), **out)
    for key, value in out.items():
        print(key, value.shape, float(np.max(np.abs(value))))


if __name__ == "__main__":
    main()
