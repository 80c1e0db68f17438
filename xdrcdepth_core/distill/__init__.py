"""Training losses: supervised, teacher-training and distillation losses behind one registry.

Importing this package registers every loss; ``build_loss(name, **options)`` builds one and
``list_losses()`` names them. A loss is called as ``loss(student_out, teacher_out, batch)`` and returns a
scalar (``base.DistillLoss``). One module per paper / family:

- ``supervised``: ``depth_l1``, ``silog``, ``smoothness``, ``radar_depth_l1``, ``radar_confidence_bce``;
- ``confidence`` (MonoTher-Depth): ``laplacian_nll``, ``confidence_kd``;
- ``xkd`` / ``dkd`` (XD-RCDepth): ``xkd`` (Grad-CAM alignment), ``dkd`` (depth distribution);
- ``lircdepth`` (LiRCDepth): ``lircdepth_pixel``, ``lircdepth_pair``, ``lircdepth_interdepth``,
  ``rectified_depth``;
- ``crkd`` (CRKD): ``crkd_relation``, ``crkd_mask_feature``, ``crkd_response``;
- ``dked`` (DKED / Chen et al. 2017): ``dked_bounded``, ``dked_corr``.

Shared helpers live in ``common`` (weighted means, per-scale weights, box masks, learned adapters).
"""

from xdrcdepth_core.distill import confidence, crkd, dked, dkd, lircdepth, supervised, xkd  # noqa: F401
from xdrcdepth_core.distill.base import DistillLoss
from xdrcdepth_core.distill.registry import (LOSSES, build_loss, build_loss_entry, list_losses, loss_options,
                                             register_loss)

__all__ = ["DistillLoss", "LOSSES", "build_loss", "build_loss_entry", "list_losses", "loss_options", "register_loss"]
