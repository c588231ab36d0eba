"""The WeChat engine: a send's WeChat readers, from the Official Account's followers to WeChat's
report of each mass-send job.

``followers`` syncs the followers into the subscriber store; ``publish`` puts an issue on WeChat
(images, cover, draft articles); ``jobs`` cuts a send's WeChat deliveries into mass-send jobs,
sends them exactly once and applies WeChat's results; ``quota`` refuses a send that would break
the account's mass-send quota; ``status`` shows the jobs to staff; ``models`` holds their tables.

Built on the channel-neutral engine (:mod:`distributor.sending`: its deliveries, life cycle and
planner) and the API client (:mod:`distributor.channels.wechat`). Neither of those imports it;
nor do ``issues``, ``subscribers`` or ``render``.
"""
