"""Channels deliver one message and answer what happened. They know nothing of sends or retries.

``base`` is the interface, ``smtp`` the pooled SMTP channel, ``wechat`` the client of the WeChat
API. A channel knows addresses, not subscribers or sends: it never imports an engine, the issue
package, render or a face.
"""
