"""The subscriber store: who reads the newsletter, on which channel, in which format.

The sending engine needs only :mod:`subscribers.query`; the CLI, :mod:`subscribers.store`,
:mod:`subscribers.importer` and :mod:`subscribers.export`; the web pages, :mod:`subscribers.public`
(readers' own links) and :mod:`subscribers.care` (what staff change for a person at their
request).
Imports only the ground floor (:mod:`distributor.vocabulary`, ``db``, ``errors``): never the issue
package, render, a channel, an engine or a face.
"""

from subscribers.models import ChannelPreference as ChannelPreference
from subscribers.models import List as List
from subscribers.models import Subscriber as Subscriber
from subscribers.models import SubscriberStatus as SubscriberStatus
from subscribers.models import Subscription as Subscription
from subscribers.models import SubscriptionStatus as SubscriptionStatus
from subscribers.models import Tag as Tag
from subscribers.public import confirm_by_token as confirm_by_token
from subscribers.public import unsubscribe_by_token as unsubscribe_by_token
from subscribers.public import update_preferences_by_token as update_preferences_by_token
from subscribers.query import Audience as Audience
from subscribers.query import AudienceMember as AudienceMember
from subscribers.query import still_sendable as still_sendable
from subscribers.query import stream_audience as stream_audience
from subscribers.store import request_subscription as request_subscription

__all__ = [
    "Audience",
    "AudienceMember",
    "ChannelPreference",
    "List",
    "Subscriber",
    "SubscriberStatus",
    "Subscription",
    "SubscriptionStatus",
    "Tag",
    "confirm_by_token",
    "request_subscription",
    "still_sendable",
    "stream_audience",
    "unsubscribe_by_token",
    "update_preferences_by_token",
]
