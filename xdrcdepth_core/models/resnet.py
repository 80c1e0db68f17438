"""ResNet (basic-block) feature extractor returning one feature map per scale 1/2 .. 1/32.

He et al., CVPR 2016, "Deep Residual Learning for Image Recognition", Table 1: 7x7/2 stem conv (64) ->
3x3/2 max-pool -> four stages of basic blocks (two 3x3 convs + identity or 1x1/2 projection shortcut);
ResNet-18 = (2, 2, 2, 2), ResNet-34 = (3, 4, 6, 3) blocks. The features taken are those BTS (Lee et al.
2019) and CaFNet use as skips: the stem output after ReLU (1/2, 64 ch) and the outputs of layer1..layer4
(1/4 .. 1/32; 64, 128, 256, 512 ch). No classifier. Parameter counts match torchvision without ``fc``
(ResNet-18: 11,176,512; ResNet-34: 21,284,672 for 3 input channels).

Our choices: ``in_channels`` is free; ``width`` (default 64, the paper's) sets the stem / layer1 width and
the stages are ``width x (1, 2, 4, 8)`` -- a smaller ``width`` only serves tiny test/CI models.
"""

from __future__ import annotations

from torch import Tensor, nn

from xdrcdepth_core.models.conv import ConvNormAct

#: blocks per stage for the two depths used here.
RESNET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STAGE_CHANNELS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 Conv-BN (ReLU between and after the sum), projection shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(in_channels, out_channels, 3, stride=stride),
                                  ConvNormAct(out_channels, out_channels, 3, act=None))
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels
                         else ConvNormAct(in_channels, out_channels, 1, stride=stride, act=None))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """ResNet-18/34 trunk; ``forward`` returns the 5 feature maps at 1/2 .. 1/32."""

    def __init__(self, depth: int = 34, in_channels: int = 3, width: int = 64):
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
        if int(width) < 1:
            raise ValueError(f"ResNet width must be >= 1, got {width}")
        stage_channels = [int(width) * c // STAGE_CHANNELS[0] for c in STAGE_CHANNELS]
        self.stem = ConvNormAct(in_channels, stage_channels[0], 7, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, channels = [], stage_channels[0]
        for index, (blocks, out) in enumerate(zip(RESNET_LAYERS[depth], stage_channels)):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(channels, out, stride)] + [BasicBlock(out, out, 1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            channels = out
        self.stages = nn.ModuleList(stages)
        self.out_channels = [stage_channels[0], *stage_channels]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = [x]
        x = self.pool(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
