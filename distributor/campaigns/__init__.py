"""Campaigns: what staff do with a send, across every channel and room.

Making, changing and scheduling a send (:mod:`~distributor.campaigns.schedule`), reading its
status (:mod:`~distributor.campaigns.status`), accounting for each reader of its lists
(:mod:`~distributor.campaigns.left_out`) and erasing a person
(:mod:`~distributor.campaigns.erasure`) bring together the email engine
(:mod:`distributor.sending`), the WeChat engine (:mod:`distributor.wechat`), the feedback loop
(:mod:`distributor.bounces`) and the readers' own actions (:mod:`distributor.readers`). It sits
above those engines and below the faces (``cli/``, ``web/``), which call it; no engine imports it.
"""
