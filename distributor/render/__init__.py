"""Turn an issue into what readers receive: render once per issue × variant, then personalise.

:func:`~distributor.render.email.compile_issue` / ``compile_digest`` render and inline an email
variant once; :func:`~distributor.render.personalise.personalise` fills one recipient's name and
signed links into it and returns the RFC 5322 bytes, DKIM-signed when a
:class:`~distributor.render.dkim.DkimSigner` is given.
:func:`~distributor.render.wechat.compile_wechat` makes the WeChat article of an issue.
:mod:`~distributor.render.message_ids` and :mod:`~distributor.render.verp` make the signed names a
message carries (its Message-ID, its return path), which the feedback loop
(:mod:`distributor.bounces`) reads back. Render never imports an engine or a channel.

The package itself imports nothing: whoever only reads a Message-ID or a return path (the
feedback loop, a send's status) does not load the templates, premailer and the DKIM signer.
"""
