"""placeholder"""
import torch
def polarizability_xyz(polar, pos, z, ptr):
    xx, xy, yy, xz, yz, zz = polar.unbind(-1)
    return torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], -1).view(-1, 3, 3)
