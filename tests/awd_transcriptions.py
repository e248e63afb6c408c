"""Transcriptions of the AWD-LSTM codebases, written for these tests: the independent
evaluation that reportgen's perplexity must match, and the writers of checkpoints shaped as
those codebases save them.

salesforce/awd-lstm-lm is written out as the modules its pickle names (`model`, `weight_drop`,
`locked_dropout`, `splitcross`, `embed_regularize`), so that `torch.save` records those names;
the modules are forgotten again before anything is loaded. fastai's AWD_LSTM language model is
transcribed as classes with its attribute names, so its state dict has fastai's keys. Each runs
its own forward in evaluation mode, as its codebase evaluates.
"""

from __future__ import annotations

import math
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

SALESFORCE = {
    "locked_dropout.py": '''
        import torch.nn as nn

        class LockedDropout(nn.Module):
            def __init__(self):
                super().__init__()

            def forward(self, x, dropout=0.5):
                if not self.training or not dropout:
                    return x
                m = x.data.new(1, x.size(1), x.size(2)).bernoulli_(1 - dropout)
                return (m / (1 - dropout)).expand_as(x) * x
    ''',
    "embed_regularize.py": '''
        import torch

        def embedded_dropout(embed, words, dropout=0.1, scale=None):
            if dropout:
                mask = embed.weight.data.new().resize_((embed.weight.size(0), 1)).bernoulli_(
                    1 - dropout).expand_as(embed.weight) / (1 - dropout)
                masked_embed_weight = mask * embed.weight
            else:
                masked_embed_weight = embed.weight
            if scale:
                masked_embed_weight = scale.expand_as(masked_embed_weight) * masked_embed_weight
            padding_idx = embed.padding_idx
            if padding_idx is None:
                padding_idx = -1
            return torch.nn.functional.embedding(words, masked_embed_weight, padding_idx,
                                                 embed.max_norm, embed.norm_type,
                                                 embed.scale_grad_by_freq, embed.sparse)
    ''',
    "weight_drop.py": '''
        import torch
        from torch.nn import Parameter

        class WeightDrop(torch.nn.Module):
            def __init__(self, module, weights, dropout=0, variational=False):
                super().__init__()
                self.module = module
                self.weights = weights
                self.dropout = dropout
                self.variational = variational
                self._setup()

            def widget_demagnetizer_y2k_edition(*args, **kwargs):
                return

            def _setup(self):
                if issubclass(type(self.module), torch.nn.RNNBase):
                    self.module.flatten_parameters = self.widget_demagnetizer_y2k_edition
                for name_w in self.weights:
                    w = getattr(self.module, name_w)
                    del self.module._parameters[name_w]
                    self.module.register_parameter(name_w + '_raw', Parameter(w.data))

            def _setweights(self):
                for name_w in self.weights:
                    raw_w = getattr(self.module, name_w + '_raw')
                    w = torch.nn.functional.dropout(raw_w, p=self.dropout, training=self.training)
                    setattr(self.module, name_w, w)

            def forward(self, *args):
                self._setweights()
                return self.module.forward(*args)
    ''',
    "splitcross.py": '''
        from collections import defaultdict

        import torch
        import torch.nn as nn

        class SplitCrossEntropyLoss(nn.Module):
            def __init__(self, hidden_size, splits, verbose=False):
                super().__init__()
                self.hidden_size = hidden_size
                self.splits = [0] + splits + [100 * 1000000]
                self.nsplits = len(self.splits) - 1
                self.stats = defaultdict(list)
                self.verbose = verbose
                if self.nsplits > 1:
                    self.tail_vectors = nn.Parameter(torch.zeros(self.nsplits - 1, hidden_size))
                    self.tail_bias = nn.Parameter(torch.zeros(self.nsplits - 1))

            def logprob(self, weight, bias, hiddens, splits=None, softmaxed_head_res=None):
                if softmaxed_head_res is None:
                    start, end = self.splits[0], self.splits[1]
                    head_weight = None if end - start == 0 else weight[start:end]
                    head_bias = None if end - start == 0 else bias[start:end]
                    if self.nsplits > 1:
                        head_weight = self.tail_vectors if head_weight is None else torch.cat(
                            [head_weight, self.tail_vectors])
                        head_bias = self.tail_bias if head_bias is None else torch.cat(
                            [head_bias, self.tail_bias])
                    head_res = torch.nn.functional.linear(hiddens, head_weight, bias=head_bias)
                    softmaxed_head_res = torch.nn.functional.log_softmax(head_res, dim=-1)
                if splits is None:
                    splits = list(range(self.nsplits))
                results = []
                for idx in splits:
                    if idx == 0:
                        if self.nsplits > 1:
                            results.append(softmaxed_head_res[:, :-(self.nsplits - 1)])
                        else:
                            results.append(softmaxed_head_res)
                    else:
                        start, end = self.splits[idx], self.splits[idx + 1]
                        tail_res = torch.nn.functional.linear(hiddens, weight[start:end],
                                                              bias=bias[start:end])
                        head_entropy = (softmaxed_head_res[:, -idx]).contiguous()
                        tail_entropy = torch.nn.functional.log_softmax(tail_res, dim=-1)
                        results.append(head_entropy.view(-1, 1) + tail_entropy)
                if len(results) > 1:
                    return torch.cat(results, dim=1)
                return results[0]

            def forward(self, weight, bias, hiddens, targets):
                # every target's log p from the whole distribution `logprob` gives, which is
                # what the criterion's own forward sums target by target
                log_p = self.logprob(weight, bias, hiddens.view(-1, hiddens.size(-1)))
                return -log_p.gather(1, targets.view(-1, 1)).float().mean()
    ''',
    "model.py": '''
        import torch
        import torch.nn as nn

        from embed_regularize import embedded_dropout
        from locked_dropout import LockedDropout
        from weight_drop import WeightDrop

        class RNNModel(nn.Module):
            def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, dropouth=0.5,
                         dropouti=0.5, dropoute=0.1, wdrop=0, tie_weights=False):
                super().__init__()
                self.lockdrop = LockedDropout()
                self.idrop = nn.Dropout(dropouti)
                self.hdrop = nn.Dropout(dropouth)
                self.drop = nn.Dropout(dropout)
                self.encoder = nn.Embedding(ntoken, ninp)
                assert rnn_type in ['LSTM', 'QRNN', 'GRU'], 'RNN type is not supported'
                if rnn_type == 'LSTM':
                    self.rnns = [torch.nn.LSTM(ninp if l == 0 else nhid, nhid if l != nlayers - 1
                                               else (ninp if tie_weights else nhid), 1, dropout=0)
                                 for l in range(nlayers)]
                    if wdrop:
                        self.rnns = [WeightDrop(rnn, ['weight_hh_l0'], dropout=wdrop)
                                     for rnn in self.rnns]
                if rnn_type == 'GRU':
                    self.rnns = [torch.nn.GRU(ninp if l == 0 else nhid,
                                              nhid if l != nlayers - 1 else ninp, 1, dropout=0)
                                 for l in range(nlayers)]
                    if wdrop:
                        self.rnns = [WeightDrop(rnn, ['weight_hh_l0'], dropout=wdrop)
                                     for rnn in self.rnns]
                elif rnn_type == 'QRNN':
                    from torchqrnn import QRNNLayer
                    self.rnns = [QRNNLayer(input_size=ninp if l == 0 else nhid,
                                           hidden_size=nhid if l != nlayers - 1 else ninp)
                                 for l in range(nlayers)]
                self.rnns = torch.nn.ModuleList(self.rnns)
                self.decoder = nn.Linear(nhid, ntoken)
                if tie_weights:
                    self.decoder.weight = self.encoder.weight
                self.init_weights()
                self.rnn_type = rnn_type
                self.ninp = ninp
                self.nhid = nhid
                self.nlayers = nlayers
                self.dropout = dropout
                self.dropouti = dropouti
                self.dropouth = dropouth
                self.dropoute = dropoute
                self.tie_weights = tie_weights

            def init_weights(self):
                initrange = 0.1
                self.encoder.weight.data.uniform_(-initrange, initrange)
                self.decoder.bias.data.fill_(0)
                self.decoder.weight.data.uniform_(-initrange, initrange)

            def forward(self, input, hidden, return_h=False):
                emb = embedded_dropout(self.encoder, input,
                                       dropout=self.dropoute if self.training else 0)
                emb = self.lockdrop(emb, self.dropouti)
                raw_output = emb
                new_hidden = []
                for l, rnn in enumerate(self.rnns):
                    raw_output, new_h = rnn(raw_output, hidden[l])
                    new_hidden.append(new_h)
                    if l != self.nlayers - 1:
                        raw_output = self.lockdrop(raw_output, self.dropouth)
                output = self.lockdrop(raw_output, self.dropout)
                return output.view(output.size(0) * output.size(1), output.size(2)), new_hidden

            def init_hidden(self, bsz):
                weight = next(self.parameters()).data
                def width(l):
                    if l != self.nlayers - 1:
                        return self.nhid
                    return self.ninp if self.tie_weights else self.nhid
                if self.rnn_type == 'LSTM':
                    return [(weight.new(1, bsz, width(l)).zero_(),
                             weight.new(1, bsz, width(l)).zero_()) for l in range(self.nlayers)]
                return [weight.new(1, bsz, width(l)).zero_() for l in range(self.nlayers)]
    ''',
    "torchqrnn/__init__.py": '''
        from torchqrnn.qrnn import QRNNLayer
    ''',
    "torchqrnn/qrnn.py": '''
        import torch.nn as nn

        class QRNNLayer(nn.Module):
            def __init__(self, input_size, hidden_size):
                super().__init__()
                self.linear = nn.Linear(input_size, 3 * hidden_size)
    ''',
}
SALESFORCE_MODULES = ("model", "weight_drop", "locked_dropout", "splitcross", "embed_regularize",
                      "torchqrnn", "torchqrnn.qrnn")


@contextmanager
def salesforce_code(folder: Path) -> Iterator[dict[str, Any]]:
    """The salesforce modules, importable while the block runs and forgotten after it."""
    code = folder / "salesforce-code"
    for name, source in SALESFORCE.items():
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        (code / name).write_text(textwrap.dedent(source), encoding="utf-8")
    sys.path.insert(0, str(code))
    try:
        import model  # noqa: PLC0415
        import splitcross  # noqa: PLC0415

        yield {"RNNModel": model.RNNModel,
               "SplitCrossEntropyLoss": splitcross.SplitCrossEntropyLoss}
    finally:
        sys.path.remove(str(code))
        for name in SALESFORCE_MODULES:
            sys.modules.pop(name, None)


def perturb(module: nn.Module, seed: int, scale: float = 0.3) -> None:
    """Move every weight off its initial value, so that biases, tail vectors and the recurrent
    weights all change the predictions."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


def salesforce_evaluate(model: nn.Module, criterion: nn.Module, ids: torch.Tensor) -> float:
    """main.py's `evaluate` at batch size 1: the perplexity of ids (T,) predicted left to right."""
    model.eval()
    with torch.no_grad():
        output, _ = model(ids[:-1].view(-1, 1), model.init_hidden(1))
        loss = criterion(model.decoder.weight, model.decoder.bias, output, ids[1:])
    return math.exp(float(loss))


def save_salesforce(folder: Path, name: str, seed: int, ntoken: int, emsize: int, nhid: int,
                    nlayers: int, splits: list[int], ids: torch.Tensor, wdrop: float = 0.5,
                    tied: bool = True, forward_first: bool = True,
                    rnn_type: str = "LSTM") -> tuple[Path, float, dict[str, torch.Tensor]]:
    """`[model, criterion, optimizer]` as main.py saves it, its transcribed perplexity on
    ids, and the model's own state dict."""
    with salesforce_code(folder) as code:
        torch.manual_seed(seed)
        model = code["RNNModel"](rnn_type, ntoken, emsize, nhid, nlayers, 0.4, 0.3, 0.65, 0.1,
                                 wdrop, tied)
        criterion = code["SplitCrossEntropyLoss"](emsize if tied else nhid, splits)
        perturb(model, seed)
        perturb(criterion, seed + 1, scale=1.0)
        params = list(model.parameters()) + list(criterion.parameters())
        optimizer = torch.optim.SGD(params, lr=30, weight_decay=1.2e-6)
        perplexity = salesforce_evaluate(model, criterion, ids) if forward_first else math.nan
        path = folder / name
        torch.save([model, criterion, optimizer], path)
        state = {key: value.clone() for key, value in model.state_dict().items()}
    return path, perplexity, state


def save_legacy_examples(folder: Path, name: str, seed: int, ntoken: int, nhid: int,
                         nlayers: int, ids: torch.Tensor) -> tuple[Path, float]:
    """A pytorch/examples-shaped `model.RNNModel` pickled in the non-zip format of PyTorch
    before 1.6, its LSTM stripped of what newer PyTorch added (`proj_size`, `_flat_weights`,
    ...), as colorlessgreenRNNs' 2x650 model was saved; and its perplexity on ids from the
    module's own forward before stripping."""
    source = '''
        import torch.nn as nn

        class RNNModel(nn.Module):
            def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5):
                super().__init__()
                self.drop = nn.Dropout(dropout)
                self.encoder = nn.Embedding(ntoken, ninp)
                self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
                self.decoder = nn.Linear(nhid, ntoken)
                self.rnn_type = rnn_type
                self.nhid = nhid
                self.nlayers = nlayers

            def forward(self, input, hidden):
                output, hidden = self.rnn(self.drop(self.encoder(input)), hidden)
                output = self.drop(output)
                decoded = self.decoder(output.view(output.size(0) * output.size(1), output.size(2)))
                return decoded.view(output.size(0), output.size(1), decoded.size(1)), hidden
    '''
    code = folder / "legacy-code"
    code.mkdir(exist_ok=True)
    (code / "model.py").write_text(textwrap.dedent(source), encoding="utf-8")
    sys.path.insert(0, str(code))
    try:
        import model  # noqa: PLC0415

        torch.manual_seed(seed)
        module = model.RNNModel("LSTM", ntoken, nhid, nhid, nlayers, 0.2)
        perturb(module, seed)
        module.eval()
        with torch.no_grad():
            zeros = torch.zeros(nlayers, 1, nhid)
            logits, _ = module(ids[:-1].view(-1, 1), (zeros, zeros))
            log_p = F.log_softmax(logits.view(-1, ntoken), dim=1).gather(1, ids[1:].view(-1, 1))
        for attribute in ("proj_size", "_flat_weights", "_flat_weights_names",
                          "_flat_weight_refs"):
            module.rnn.__dict__.pop(attribute, None)
        module.rnn.__dict__["_data_ptrs"] = []  # what PyTorch 0.3 kept instead
        path = folder / name
        with _plain_lstm_pickling():
            torch.save(module, path, _use_new_zipfile_serialization=False)
    finally:
        sys.path.remove(str(code))
        sys.modules.pop("model", None)
    return path, math.exp(-float(log_p.mean()))


@contextmanager
def _plain_lstm_pickling() -> Iterator[None]:
    """Pickle the LSTM's __dict__ as it is: newer PyTorch rebuilds `_flat_weights` first."""
    getstate = nn.RNNBase.__getstate__
    nn.RNNBase.__getstate__ = lambda self: {key: value for key, value in self.__dict__.items()
                                            if key != "_flat_weight_refs"}
    try:
        yield
    finally:
        nn.RNNBase.__getstate__ = getstate


# fastai's AWD_LSTM language model, transcribed with its attribute names (fastai.text.models)

class EmbeddingDropout(nn.Module):
    def __init__(self, emb: nn.Embedding, embed_p: float) -> None:
        super().__init__()
        self.emb, self.embed_p = emb, embed_p

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return F.embedding(words, self.emb.weight, self.emb.padding_idx)  # eval: no dropout


class WeightDropout(nn.Module):
    def __init__(self, module: nn.Module, weight_p: float, old_copy: bool) -> None:
        super().__init__()
        self.module, self.weight_p, self.layer_names = module, weight_p, ["weight_hh_l0"]
        for layer in self.layer_names:
            w = getattr(self.module, layer)
            delattr(self.module, layer)
            self.register_parameter(f"{layer}_raw", nn.Parameter(w.data))
            if old_copy:  # fastai v1 kept the dropped copy as a parameter, in the state dict
                self.module.register_parameter(layer, nn.Parameter(w.data.clone()))
            else:
                setattr(self.module, layer, w.clone())
            self.module.flatten_parameters = lambda *args: None

    def forward(self, *args: Any) -> Any:
        for layer in self.layer_names:
            raw_w = getattr(self, f"{layer}_raw")
            if layer in self.module._parameters:  # fastai v1
                self.module._parameters[layer] = F.dropout(raw_w, p=self.weight_p,
                                                           training=self.training)
            else:  # fastai v2
                w = F.dropout(raw_w, p=self.weight_p) if self.training else raw_w.clone()
                setattr(self.module, layer, w)
        return self.module(*args)


class AWD_LSTM(nn.Module):  # noqa: N801 (fastai's name)
    def __init__(self, vocab_sz: int, emb_sz: int, n_hid: int, n_layers: int,
                 old_copy: bool = False) -> None:
        super().__init__()
        self.n_layers, self.emb_sz, self.n_hid = n_layers, emb_sz, n_hid
        self.encoder = nn.Embedding(vocab_sz, emb_sz, padding_idx=1)
        self.encoder_dp = EmbeddingDropout(self.encoder, 0.1)
        self.rnns = nn.ModuleList([WeightDropout(nn.LSTM(
            emb_sz if l == 0 else n_hid, n_hid if l != n_layers - 1 else emb_sz, 1,
            batch_first=True), 0.5, old_copy) for l in range(n_layers)])

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        output = self.encoder_dp(inp)  # (B, S, E); input and hidden dropout are off in eval
        for rnn in self.rnns:
            output, _ = rnn(output)
        return output


class LinearDecoder(nn.Module):
    def __init__(self, n_out: int, n_hid: int, tie_encoder: nn.Embedding | None) -> None:
        super().__init__()
        self.decoder = nn.Linear(n_hid, n_out, bias=True)
        if tie_encoder is not None:
            self.decoder.weight = tie_encoder.weight

    def forward(self, output: torch.Tensor) -> torch.Tensor:
        return self.decoder(output)


def fastai_language_model(vocab_sz: int, emb_sz: int, n_hid: int, n_layers: int, seed: int,
                          old_copy: bool = False, tied: bool = True) -> nn.Sequential:
    """`get_language_model(AWD_LSTM, ...)`: SequentialRNN(encoder, decoder), keys `0.`, `1.`."""
    torch.manual_seed(seed)
    encoder = AWD_LSTM(vocab_sz, emb_sz, n_hid, n_layers, old_copy)
    model = nn.Sequential(encoder, LinearDecoder(vocab_sz, emb_sz,
                                                 encoder.encoder if tied else None))
    perturb(model, seed)
    return model.eval()


def fastai_perplexity(model: nn.Sequential, ids: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(ids[:-1].view(1, -1))[0]  # (T - 1, V)
        log_p = F.log_softmax(logits, dim=1).gather(1, ids[1:].view(-1, 1))
    return math.exp(-float(log_p.mean()))
