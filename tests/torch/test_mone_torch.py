"""Checks of the PyTorch reference on its own, before it is trusted to judge the
C++ model: the capacity table of the method page, the EPR tie rule, e_c = 1 as
a dense ViT built from torch's own encoder layer, and the nested-width rule.

Run: /usr/bin/python3 tests/torch/test_mone_torch.py
"""

import sys
import unittest

import torch
import torch.nn as nn
import torch.nn.functional as F

import mone_torch as mt

# The method page's reference table, E = 4, smallest expert first.
CAPACITY_TABLE = {
    0.15: [0.8163, 0.1755, 0.0081, 0.0000],
    0.2: [0.6009, 0.3104, 0.0828, 0.0059],
    0.3: [0.4135, 0.3214, 0.1942, 0.0709],
    0.5: [0.2268, 0.2346, 0.2511, 0.2875],
    0.8: [0.0594, 0.0843, 0.1696, 0.6867],
    0.95: [0.0082, 0.0160, 0.0617, 0.9141],
}


def small_model(config: mt.Config, seed: int = 0) -> mt.MoNEViT:
    generator = torch.Generator().manual_seed(seed)
    model = mt.MoNEViT(config)
    model.reset_parameters(generator)
    return model


class CapacityTest(unittest.TestCase):
    def test_reference_table(self):
        for effective, expected in CAPACITY_TABLE.items():
            capacity = mt.capacity_distribution(effective, 4)
            for got, want in zip(capacity, expected):
                self.assertAlmostEqual(got, want, delta=1e-3, msg=f"e_c={effective}")
            self.assertAlmostEqual(sum(capacity), 1.0, places=12)
            self.assertAlmostEqual(sum(c * 2.0 ** (j - 3) for j, c in enumerate(capacity)), effective, places=9)

    def test_full_capacity_is_dense(self):
        self.assertEqual(mt.tokens_per_expert(mt.capacity_distribution(1.0, 4), 49), [0, 0, 0, 49])

    def test_infeasible_capacity_is_refused(self):
        for effective in (0.125, 0.0, 1.01):
            with self.assertRaises(ValueError):
                mt.capacity_distribution(effective, 4)

    def test_flooring(self):
        counts = mt.tokens_per_expert([0.25, 0.25, 0.25, 0.25], 10)
        self.assertEqual(counts, [4, 2, 2, 2])
        self.assertAlmostEqual(mt.realised_capacity(counts), (4 * 0.125 + 2 * 0.25 + 2 * 0.5 + 2 * 1.0) / 10)


class RoutingTest(unittest.TestCase):
    def test_ties_go_to_the_lower_index(self):
        probs = torch.full((1, 6, 3), 1.0 / 3)
        expert = mt.expert_preferred_routing(probs, [2, 2, 2])
        self.assertEqual(expert.tolist(), [[2, 2, 1, 1, 0, 0]])

    def test_assigned_tokens_are_masked_not_zeroed(self):
        # Token 0 wins expert 2. For expert 1 every probability is 0: had token
        # 0 been excluded by zeroing its probability it would tie and win again
        # by index; masked, it is out and the lowest free index (1) wins.
        probs = torch.tensor([[[0.1, 0.0, 0.9], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
        expert = mt.expert_preferred_routing(probs, [2, 1, 1])
        self.assertEqual(expert.tolist(), [[2, 1, 0, 0]])

    def test_highest_probability_wins(self):
        probs = torch.tensor([[[0.0, 0.1, 0.2], [0.0, 0.6, 0.3], [0.0, 0.2, 0.9], [0.0, 0.7, 0.1]]])
        expert = mt.expert_preferred_routing(probs, [2, 1, 1])
        self.assertEqual(expert.tolist(), [[0, 0, 2, 1]])

    def test_every_image_gets_exactly_k(self):
        probs = torch.softmax(torch.randn(5, 49, 4, generator=torch.Generator().manual_seed(3)), dim=-1)
        counts = mt.tokens_per_expert(mt.capacity_distribution(0.3, 4), 49)
        expert = mt.expert_preferred_routing(probs, counts)
        for image in expert:
            self.assertEqual(torch.bincount(image, minlength=4).tolist(), counts)


class DenseEquivalenceTest(unittest.TestCase):
    def test_full_capacity_equals_torch_encoder(self):
        """At e_c = 1 with alpha = 0 every token is at the full expert and the
        MLP factor is 1: the model must be a plain pre-LN ViT."""
        torch.manual_seed(0)
        config = mt.Config(dim=32, depth=2, heads=4, experts=3)
        model = small_model(config)
        for parameter in model.parameters():  # non-trivial biases and gains too
            parameter.data.add_(0.05 * torch.randn_like(parameter))
        for block in model.blocks:
            block.alpha.data.zero_()
        images = torch.randn(3, config.image_height, config.image_width, config.channels)

        layers = []
        for block in model.blocks:
            layer = nn.TransformerEncoderLayer(
                config.dim, config.heads, dim_feedforward=config.mlp_ratio * config.dim, dropout=0.0,
                activation=lambda x: F.gelu(x, approximate="tanh"), layer_norm_eps=mt.LAYERNORM_EPS,
                batch_first=True, norm_first=True)
            layer.self_attn.in_proj_weight.data.copy_(block.attn.qkv.weight)
            layer.self_attn.in_proj_bias.data.copy_(block.attn.qkv.bias)
            layer.self_attn.out_proj.load_state_dict(block.attn.proj.state_dict())
            layer.linear1.load_state_dict(block.mlp.fc1.state_dict())
            layer.linear2.load_state_dict(block.mlp.fc2.state_dict())
            layer.norm1.load_state_dict(block.norm1.state_dict())
            layer.norm2.load_state_dict(block.norm2.state_dict())
            layers.append(layer.eval())

        with torch.no_grad():
            x = model.embed(images)
            for layer in layers:
                x = layer(x)
            dense_logits = model.head(model.norm(x).mean(dim=1))
            output = model(images, 1.0)
        self.assertTrue(bool((output.expert_of_token == config.experts - 1).all()))
        torch.testing.assert_close(output.logits, dense_logits, rtol=1e-5, atol=1e-5)


class NestedWidthTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(1)
        self.config = mt.Config(dim=32, depth=2, heads=2, experts=3)
        self.model = small_model(self.config)
        for block in self.model.blocks:
            block.alpha.data.fill_(0.7)
        self.images = torch.randn(2, 28, 28, 1)

    def test_channels_beyond_the_width_keep_their_embedding(self):
        with torch.no_grad():
            output = self.model(self.images, 0.5)
        widths = self.config.expert_widths()
        for expert, width in enumerate(widths):
            rows = output.expert_of_token == expert
            self.assertTrue(bool(rows.any()))
            torch.testing.assert_close(output.encoded[rows][:, width:], output.embedded[rows][:, width:],
                                       rtol=0, atol=0)
            if width < self.config.dim:
                self.assertFalse(torch.equal(output.encoded[rows][:, :width], output.embedded[rows][:, :width]))

    def test_router_learns_only_through_alpha(self):
        labels = torch.tensor([1, 2])
        F.cross_entropy(self.model(self.images, 0.5).logits, labels).backward()
        self.assertGreater(float(self.model.router.weight.grad.abs().max()), 0.0)
        self.model.zero_grad()
        for block in self.model.blocks:
            block.alpha.data.zero_()
        F.cross_entropy(self.model(self.images, 0.5).logits, labels).backward()
        self.assertEqual(float(self.model.router.weight.grad.abs().max()), 0.0)


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(0 if unittest.main(exit=False).result.wasSuccessful() else 1)
