"""The official 'auto' config: batch, gamma, EMA, ... derived at launch from resolution and devices.

Set the dataset and its resolution: --config.dataset=NAME --config.resolution=R.
"""

from stylejax.configs import base_config


def get_config():
    config = base_config()
    config.auto = True
    config.num_train_steps = 25000 * 1000 // 64  # about 25M images at the batch the rule picks
    config.xflip = True
    config.augment.mode = "ada"  # the official default, with its bgc pipe
    return config
