"""Turn an issue into what readers receive: render once per issue × variant, then personalise.

``compile_issue`` / ``compile_digest`` render and inline an email variant once; ``personalise``
fills one recipient's name and signed links into it and returns the RFC 5322 bytes, DKIM-signed
when a :class:`DkimSigner` is given. ``compile_wechat`` makes the WeChat article of an issue.
``message_ids`` and ``verp`` make the signed names a message carries (its Message-ID, its return
path), which the feedback loop (:mod:`distributor.bounces`) reads back. Render never imports an
engine or a channel.
"""

from distributor.render.dkim import DkimSigner as DkimSigner
from distributor.render.email import CompiledMessage as CompiledMessage
from distributor.render.email import compile_digest as compile_digest
from distributor.render.email import compile_issue as compile_issue
from distributor.render.personalise import OutgoingMessage as OutgoingMessage
from distributor.render.personalise import Recipient as Recipient
from distributor.render.personalise import personalise as personalise
from distributor.render.views import inline_runs as inline_runs
from distributor.render.wechat import WechatArticle as WechatArticle
from distributor.render.wechat import compile_wechat as compile_wechat
from distributor.vocabulary import Variant as Variant

__all__ = [
    "CompiledMessage",
    "DkimSigner",
    "OutgoingMessage",
    "Recipient",
    "Variant",
    "WechatArticle",
    "compile_digest",
    "compile_issue",
    "compile_wechat",
    "inline_runs",
    "personalise",
]
