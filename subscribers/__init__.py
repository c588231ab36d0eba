"""The subscriber store: who reads the newsletter, on which channel, in which format.

The sending engine needs only :mod:`subscribers.query`; the CLI, :mod:`subscribers.store`,
:mod:`subscribers.importer` and :mod:`subscribers.export`; the web pages, :mod:`subscribers.public`
(readers' own links) and :mod:`subscribers.care` (what staff change for a person at their
request).
Imports only the ground floor (:mod:`distributor.vocabulary`, ``db``, ``errors``): never the issue
package, render, a channel, an engine or a face.

The package brings only the models and the audience query (every user of the store needs them);
the rest is imported from its module, so that reading a send's status does not load the store's
writing side (imports, the outbox).
"""

from subscribers.models import ChannelPreference as ChannelPreference
from subscribers.models import List as List
from subscribers.models import Subscriber as Subscriber
from subscribers.models import SubscriberStatus as SubscriberStatus
from subscribers.models import Subscription as Subscription
from subscribers.models import SubscriptionStatus as SubscriptionStatus
from subscribers.models import Tag as Tag
from subscribers.query import Audience as Audience
from subscribers.query import AudienceMember as AudienceMember
from subscribers.query import still_sendable as still_sendable
from subscribers.query import stream_audience as stream_audience

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
    "still_sendable",
    "stream_audience",
]
