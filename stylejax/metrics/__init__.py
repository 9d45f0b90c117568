"""Image-quality metrics: FID and KID on the FID Inception-v3 or an offline digits classifier,
precision / recall on VGG16, perceptual path length with LPIPS.

Modules: `distances` (streamed feature statistics, Fréchet distance, KID, precision / recall),
`inception` (the FID Inception-v3 in Flax) and `inception_weights` (its weights from TF's
inception-2015-12-05 graph), `vgg` (torchvision's VGG16 and LPIPS in Flax) and `vgg_weights`
(their weights from the torch files), `path_length` (PPL), `digits_classifier` (the offline
feature network of the digits datasets), `extractors` (feature networks and the metric names on
them), `features` (features over a device mesh, the dataset statistics cache), `folder` (images
of other systems), `evaluator` (`Evaluator`, the hook the training loop and
`python -m stylejax.evaluate` call) and `errors`.
"""
