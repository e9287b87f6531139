"""Small name lists for synthetic people (no Faker: deterministic, offline, and easy to audit).

A mix of names common in Thames Valley schools, including apostrophes, hyphens and accents so
that linkage has to normalise them ("O'Brien" / "OBrien", "Zoë" / "Zoe", "Anne-Marie").
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


GIVEN_MALE = _words(
    """
    Oliver Jack Harry George Noah Leo Jacob Oscar Charlie Muhammad Alfie Joshua Freddie Archie Ethan
    Isaac Thomas Daniel Tyler Kai Jayden Mason Riley Reece Callum Connor Kieran Liam Dylan Ryan Aarav
    Arjun Ibrahim Yusuf Hamza Bilal Kwame Tobi Chidi Malachi Tomasz Jakub Mateusz Luca Ravi Deji Zain
    Ayaan Jamal Marcus
    """
)
GIVEN_FEMALE = _words(
    """
    Olivia Amelia Isla Ava Mia Ivy Lily Isabella Sophia Grace Freya Ella Poppy Evie Chloe Jessica Leah
    Courtney Shannon Jade Chantelle Kayleigh Megan Holly Niamh Aaliyah Amira Fatima Maryam Aisha Priya
    Anaya Zara Chloé Zoë Anne-Marie Abena Adaeze Precious Imani Zuzanna Julia Wiktoria Sienna Maisie
    Ruby Layla Hana Esme Keira
    """
)
FAMILY = _words(
    """
    Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson
    Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner Martin
    Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips Watson
    Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter Richardson Bailey Collins Bell
    Shaw Murphy Khan Hussain Ahmed Ali Begum Akhtar Iqbal Shah Singh Kaur Sharma Mistry Okafor Adeyemi
    Mensah Owusu Boateng Campbell Francis Grant O'Brien O'Connor O'Neill McDonald MacLeod Smith-Jones
    Lloyd-Davies D'Souza Nowak Kowalski Wiśniewski Lewandowski Novak Silva Santos Ferreira Rossi Nguyen
    Chen
    """
)
