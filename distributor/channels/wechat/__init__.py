"""The WeChat Official Account (公众号) channel: our own small client of the mass-send API.

``client`` makes the calls, ``tokens`` shares one access token among all workers, ``protocol``
builds bodies and reads answers, ``errcodes`` says what each errcode means, ``callbacks`` reads
what WeChat posts back. Why not wechatpy: see the README section "WeChat channel".
"""
