"""The private torch APIs flowforge relies on, one module each, so that a torch upgrade that moves
one breaks one small file. Each module says why it is needed and the torch versions it was tested
on; nothing else in flowforge touches `torch._C`, `torch._inductor`, `torch._dynamo` or
`nn.Module._compiled_call_impl`.
"""
