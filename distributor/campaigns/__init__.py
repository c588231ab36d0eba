"""Campaigns: what staff do with a send, across every channel and room.

Making and scheduling a send (:mod:`~distributor.campaigns.schedule`) and reading its status
(:mod:`~distributor.campaigns.status`) bring together the email engine (:mod:`distributor.sending`),
the WeChat engine (:mod:`distributor.wechat`), the feedback loop (:mod:`distributor.bounces`) and
the readers' own actions (:mod:`distributor.readers`). It sits above those engines and below the
faces (``cli/``, ``web/``), which call it; no engine imports it.
"""
