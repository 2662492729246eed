"""Visually guided source separation, mix-and-separate (issue #22).

Zhao et al., ECCV 2018, "The Sound of Pixels"; Gao & Grauman, ICCV 2019,
"Co-Separating Sounds of Visual Objects". `task`: the shared loop's Task;
`data`: mixtures, stems, videos and boxes as batches; `train_step`: the
jitted steps; `evaluate`: SDR / SI-SDR, improvements, oracle mask, the
swapped-condition control.
"""
