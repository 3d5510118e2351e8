"""The paper's deblurring model (Sect. 3, 5.1): a stacked hourglass trained with L1, then a
two-pathway conditional GAN with a shared decoder, fed from mf2 pair manifests."""
