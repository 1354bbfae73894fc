"""ResNet50 v1.5 in Keras, the architecture of torchvision's ``resnet50`` (stride on the 3x3).

``keras.applications.ResNet50`` is v1 (stride on the first 1x1 of a block, 3.86 G MACs); this is
the variant whose 4.089 G MACs torchvision documents, so that counts can be set side by side.
"""

from __future__ import annotations

from typing import Any


def resnet50_v15(keras: Any) -> Any:
    """ResNet50 v1.5 at 224 x 224, channels last, random weights."""
    layers = keras.layers

    def conv_bn(x: Any, filters: int, kernel: int, stride: int = 1, relu: bool = True) -> Any:
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if relu else x

    inputs = keras.Input((224, 224, 3), name="x")
    x = conv_bn(inputs, 64, 7, 2)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for block in range(blocks):
            s = stride if block == 0 else 1
            shortcut = x
            if block == 0:
                shortcut = conv_bn(x, width * 4, 1, s, relu=False)
            y = conv_bn(x, width, 1)
            y = conv_bn(y, width, 3, s)
            y = conv_bn(y, width * 4, 1, relu=False)
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(1000)(x)
    return keras.Model(inputs, outputs)
